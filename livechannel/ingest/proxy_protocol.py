"""The PROXY protocol header, versions 1 (text) and 2 (binary): sans-IO parsing.

A load balancer (HAProxy `send-proxy` / `send-proxy-v2`) puts this header in front of the
client's bytes so that the server learns the client's address, not the balancer's
(HAProxy's "The PROXY protocol", versions 1 and 2, sections 2.1 and 2.2). `parse` takes the
bytes received so far and returns None (need more), or the header's length and the source
address it names (None for a `LOCAL` / `UNKNOWN` connection: the balancer's own health
check, whose address is the socket's). Anything else raises ProxyHeaderError: with the
protocol enabled, a connection without a valid header is refused, never guessed at.
"""

from __future__ import annotations

import ipaddress
import socket
import struct
from dataclasses import dataclass

V1_PREFIX = b"PROXY "
V1_MAX_BYTES = 107  # section 2.1: the longest v1 line, CRLF included
V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
V2_FIXED_BYTES = 16  # signature, version/command, family/protocol, length
# v2 may carry TLVs (HAProxy adds a few for TLS, unique ids); more than this is not a
# balancer of ours.
V2_MAX_BYTES = V2_FIXED_BYTES + 2048
V2_VERSION = 0x2
V2_LOCAL, V2_PROXY = 0x0, 0x1
V2_INET_STREAM, V2_INET6_STREAM = 0x11, 0x21
V2_INET_BYTES, V2_INET6_BYTES = 12, 36


class ProxyHeaderError(Exception):
    """The connection does not start with a valid PROXY protocol header."""


@dataclass(frozen=True, slots=True)
class ProxyHeader:
    length: int  # bytes of the header; the client's own bytes follow
    source: tuple[str, int] | None  # the client's address; None: use the socket's peer


def parse(data: bytes) -> ProxyHeader | None:
    if not data:
        return None
    if data[:1] == V2_SIGNATURE[:1]:
        return _parse_v2(data)
    if V1_PREFIX.startswith(data[: len(V1_PREFIX)]):
        return _parse_v1(data)
    raise ProxyHeaderError("no PROXY protocol header")


def _parse_v1(data: bytes) -> ProxyHeader | None:
    end = data.find(b"\r\n", 0, V1_MAX_BYTES)
    if end < 0:
        if len(data) >= V1_MAX_BYTES:
            raise ProxyHeaderError("PROXY v1 line longer than 107 bytes")
        return None
    try:
        fields = data[:end].decode("ascii").split(" ")
    except UnicodeDecodeError:
        raise ProxyHeaderError("PROXY v1 line is not ASCII") from None
    if len(fields) >= 2 and fields[1] == "UNKNOWN":
        return ProxyHeader(end + 2, None)
    if len(fields) != 6 or fields[1] not in ("TCP4", "TCP6"):
        raise ProxyHeaderError("PROXY v1 line: expected TCP4/TCP6 and four fields")
    _, family, src, _dst, sport, _dport = fields
    version = 4 if family == "TCP4" else 6
    try:
        address = ipaddress.ip_address(src)
        port = int(sport)
    except ValueError:
        raise ProxyHeaderError("PROXY v1 line: bad source address or port") from None
    if address.version != version or not sport.isdigit() or not 0 <= port <= 65535:
        raise ProxyHeaderError("PROXY v1 line: bad source address or port")
    return ProxyHeader(end + 2, (str(address), port))


def _parse_v2(data: bytes) -> ProxyHeader | None:
    if len(data) < V2_FIXED_BYTES:
        if not V2_SIGNATURE.startswith(data[: len(V2_SIGNATURE)]):
            raise ProxyHeaderError("no PROXY protocol header")
        return None
    if data[:12] != V2_SIGNATURE:
        raise ProxyHeaderError("no PROXY protocol header")
    version, command = data[12] >> 4, data[12] & 0x0F
    family = data[13]
    (length,) = struct.unpack_from("!H", data, 14)
    total = V2_FIXED_BYTES + length
    if version != V2_VERSION or command not in (V2_LOCAL, V2_PROXY):
        raise ProxyHeaderError("PROXY v2: unknown version or command")
    if total > V2_MAX_BYTES:
        raise ProxyHeaderError(f"PROXY v2 header of {total} bytes")
    if len(data) < total:
        return None
    if command == V2_LOCAL:
        return ProxyHeader(total, None)
    body = data[V2_FIXED_BYTES:total]
    if family == V2_INET_STREAM and length >= V2_INET_BYTES:
        src = socket.inet_ntop(socket.AF_INET, body[0:4])
        (sport,) = struct.unpack_from("!H", body, 8)
    elif family == V2_INET6_STREAM and length >= V2_INET6_BYTES:
        src = socket.inet_ntop(socket.AF_INET6, body[0:16])
        (sport,) = struct.unpack_from("!H", body, 32)
    else:
        return ProxyHeader(total, None)  # UNSPEC, UDP or unix: the socket's peer stands
    return ProxyHeader(total, (src, sport))


def v1_header(src: tuple[str, int], dst: tuple[str, int]) -> bytes:
    """A v1 line (for tests and tools that stand in for a balancer)."""
    family = "TCP6" if ":" in src[0] else "TCP4"
    return f"PROXY {family} {src[0]} {dst[0]} {src[1]} {dst[1]}\r\n".encode()


def v2_header(src: tuple[str, int], dst: tuple[str, int]) -> bytes:
    six = ":" in src[0]
    af = socket.AF_INET6 if six else socket.AF_INET
    body = (
        socket.inet_pton(af, src[0]) + socket.inet_pton(af, dst[0])
        + struct.pack("!HH", src[1], dst[1])
    )  # fmt: skip
    family = V2_INET6_STREAM if six else V2_INET_STREAM
    return V2_SIGNATURE + bytes([0x21, family]) + struct.pack("!H", len(body)) + body
