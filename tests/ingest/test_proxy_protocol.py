"""The PROXY protocol header (v1 text, v2 binary): parsing byte by byte, refusals, and the
listener taking the client's address from it (the per-address connection cap counts the
address in the header, not the balancer's)."""

from __future__ import annotations

import contextlib
import socket
import struct
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from livechannel.config import Limits
from livechannel.ingest.proxy_protocol import (
    V2_SIGNATURE,
    ProxyHeader,
    ProxyHeaderError,
    parse,
    v1_header,
    v2_header,
)
from tests.support.service import ServiceThread

CASES = [
    (v1_header(("192.0.2.1", 5000), ("10.0.0.1", 1935)), ("192.0.2.1", 5000)),
    (v1_header(("2001:db8::1", 443), ("2001:db8::2", 80)), ("2001:db8::1", 443)),
    (b"PROXY UNKNOWN\r\n", None),
    (b"PROXY UNKNOWN ffff:f...f ffff:f...f 65535 65535\r\n", None),
    (v2_header(("192.0.2.1", 5000), ("10.0.0.1", 1935)), ("192.0.2.1", 5000)),
    (v2_header(("2001:db8::1", 443), ("2001:db8::2", 80)), ("2001:db8::1", 443)),
    (V2_SIGNATURE + b"\x20\x00\x00\x00", None),  # LOCAL: the balancer's health check
    # PROXY with TLVs after the addresses (HAProxy adds some): skipped whole
    (V2_SIGNATURE + b"\x21\x11\x00\x11" + bytes(12) + b"\x04\x00\x02ab", ("0.0.0.0", 0)),
    (V2_SIGNATURE + b"\x21\x00\x00\x00", None),  # UNSPEC family: the socket's peer stands
]


@pytest.mark.parametrize(("header", "source"), CASES)
def test_headers_parse_whole_and_never_early(header: bytes, source: tuple[str, int] | None) -> None:
    data = header + b"\x03client bytes"
    assert parse(data) == ProxyHeader(len(header), source)
    for cut in range(len(header)):
        assert parse(data[:cut]) is None  # every prefix: wait for more


@pytest.mark.parametrize(
    "data",
    [
        b"\x03\x00\x00\x00",  # RTMP C0 without a header
        b"GET / HTTP/1.1\r\n",
        b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",  # too few fields
        b"PROXY TCP4 1.2.3.999 5.6.7.8 1 2\r\n",
        b"PROXY TCP4 2001:db8::1 5.6.7.8 1 2\r\n",  # family and address disagree
        b"PROXY TCP4 1.2.3.4 5.6.7.8 70000 2\r\n",
        b"PROXY TCP9 1.2.3.4 5.6.7.8 1 2\r\n",
        b"PROXY " + b"x" * 120,  # no CRLF within 107 bytes
        V2_SIGNATURE + b"\x31\x11\x00\x0c" + bytes(12),  # version 3
        V2_SIGNATURE + b"\x22\x11\x00\x0c" + bytes(12),  # command 2
        V2_SIGNATURE + b"\x21\x11" + struct.pack("!H", 60000),  # absurd length
        b"\r\n\r\nXYZ",
    ],
)
def test_anything_else_is_refused(data: bytes) -> None:
    with pytest.raises(ProxyHeaderError):
        parse(data)


@given(st.binary(max_size=300))
def test_arbitrary_bytes_parse_or_raise_the_one_error(data: bytes) -> None:
    try:
        header = parse(data)
    except ProxyHeaderError:
        return
    assert header is None or 0 < header.length <= len(data)


@pytest.fixture
def proxied(tmp_path: Path) -> Iterator[ServiceThread]:
    limits = Limits(max_connections_per_ip=1, handshake_timeout_s=2)
    with ServiceThread(
        tmp_path / "data", limits=limits, proxy_protocol=frozenset({"rtmp", "http"})
    ).start() as svc:
        yield svc


def _healthz(sock: socket.socket) -> bytes:
    sock.sendall(b"GET /-/healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    return sock.recv(4096)


def _open(port: int, header: bytes) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(header)
    return sock


def test_the_cap_per_address_counts_the_address_in_the_header(proxied: ServiceThread) -> None:
    port, me = proxied.http_port, ("127.0.0.1", proxied.http_port)
    first = _open(port, v2_header(("198.51.100.1", 1000), me))
    try:
        assert _healthz(first).startswith(b"HTTP/1.1 200")  # served, and held open
        same = _open(port, v1_header(("198.51.100.1", 1001), me))
        with same:  # a second connection "from" 198.51.100.1: over its cap of 1
            assert same.recv(100) == b""
        other = _open(port, v1_header(("198.51.100.2", 1002), me))
        with other:  # another client behind the same balancer is not affected
            assert _healthz(other).startswith(b"HTTP/1.1 200")
    finally:
        first.close()


@pytest.mark.parametrize("first", [b"\x03" + bytes(1536), b"GET / HTTP/1.1\r\n\r\n"])
def test_a_connection_without_the_header_is_closed(proxied: ServiceThread, first: bytes) -> None:
    for port in (proxied.rtmp_port, proxied.http_port):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(first)
            t0 = time.monotonic()
            with contextlib.suppress(ConnectionResetError):  # closed with bytes unread
                assert sock.recv(100) == b""
            assert time.monotonic() - t0 < 2


def test_silence_is_closed_after_the_handshake_timeout(proxied: ServiceThread) -> None:
    with socket.create_connection(("127.0.0.1", proxied.rtmp_port), timeout=10) as sock:
        t0 = time.monotonic()
        with contextlib.suppress(ConnectionResetError):
            assert sock.recv(100) == b""
        assert 1.5 < time.monotonic() - t0 < 6
