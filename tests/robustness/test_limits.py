"""Limits (docs/robustness.md): every limit is a named, explained, overridable constant, and
enforced.

Each limit is set tiny in a real service on loopback and crossed by a real socket.
"""

from __future__ import annotations

import contextlib
import http.client
import inspect
import os
import socket
import time
from collections.abc import Iterator
from dataclasses import fields
from pathlib import Path

import pytest

from livechannel import config as config_module
from livechannel.config import ConfigError, Limits, load
from livechannel.store.base import Acl
from tests.robustness.rtmp_session import flv_tags, server_closes, session_for
from tests.support.rtmp_peer import SERVER_HANDSHAKE_BYTES, ScriptedPeer
from tests.support.service import BUCKET, ServiceThread, create_channel

TIGHT = Limits(
    handshake_timeout_s=0.5,
    publish_timeout_s=2.0,
    idle_timeout_s=1.0,
    max_rtmp_message_bytes=64 * 1024,
    max_rtmp_chunk_size=4096,
    max_access_unit_bytes=30_000,
    max_segment_bytes=60_000,
    max_xml_body_bytes=2048,
    max_http_requests=2,
    max_http_requests_per_ip=1,
    http_idle_timeout_s=0.5,
    http_body_timeout_s=1.0,
    http_send_stall_timeout_s=1.0,
)
TIMER_SLACK_S = 1.0  # event-loop and heartbeat granularity on a busy CI machine


@pytest.fixture(scope="module")
def tight(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceThread]:
    data = tmp_path_factory.mktemp("tight") / "data"
    with ServiceThread(data, acl=Acl.PUBLIC_READ_WRITE, limits=TIGHT).start() as svc:
        yield svc


def connect(port: int, source_ip: str = "127.0.0.1") -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5, source_address=(source_ip, 0))
    return sock


def http_request(port: int, method: str, path: str, body: bytes = b"",
                 source_ip: str = "127.0.0.1") -> tuple[int, bytes]:  # fmt: skip
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10, source_address=(source_ip, 0))
    try:
        conn.request(method, path, body=body or None)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


# --- the constants themselves ---------------------------------------------------------------


def test_every_limit_has_a_reason_and_a_config_override(tmp_path: Path) -> None:
    source = inspect.getsource(Limits).splitlines()
    for f in fields(Limits):
        line = next(i for i, text in enumerate(source) if text.strip().startswith(f"{f.name}:"))
        assert source[line - 1].strip().startswith("#"), f"{f.name} has no reason above it"
        units = ("_s", "_bytes", "_segments", "_size", "_jobs", "_channels", "_events")
        unit_ok = f.name.endswith(units) or f.name.startswith(
            "max_connections") or f.name.startswith("max_http_requests")  # fmt: skip
        assert unit_ok, f"{f.name}: a limit names its unit"
    defaults = Limits()
    overrides = {
        f.name: (getattr(defaults, f.name) * 2 + 1) if f.type == "int" else 0.25
        for f in fields(Limits)
    }
    toml = tmp_path / "c.toml"
    toml.write_text("[limits]\n" + "".join(f"{k} = {v}\n" for k, v in overrides.items()))
    loaded = load(str(toml), {}, {}).limits
    assert {f.name: getattr(loaded, f.name) for f in fields(Limits)} == overrides
    for bad in ("max_connections = 0", "idle_timeout_s = -1", "max_segment_bytes = 1.5",
                "max_http_requests = true", "no_such_limit = 1"):  # fmt: skip
        toml.write_text(f"[limits]\n{bad}\n")
        with pytest.raises(ConfigError):
            load(str(toml), {}, {})
    assert config_module.Config().limits == Limits()


# --- connections ------------------------------------------------------------------------------


def test_connection_caps_total_and_per_address_on_both_ports(
    tmp_path: Path, logs: pytest.LogCaptureFixture
) -> None:
    svc = ServiceThread(tmp_path / "d", limits=Limits(max_connections=5, max_connections_per_ip=3))
    svc.start()
    held: list[socket.socket] = []
    try:
        held += [connect(svc.rtmp_port) for _ in range(3)]
        with connect(svc.http_port) as one_too_many:  # same address, other port: counted
            assert server_closes(one_too_many, 2.0)
        held += [connect(svc.http_port, "127.0.0.2") for _ in range(2)]  # total 5
        with connect(svc.rtmp_port, "127.0.0.3") as over_total:
            assert server_closes(over_total, 2.0)
        assert not any(server_closes(s, 0.05) for s in held), "admitted connections stay open"
        held.pop(0).close()
        held.pop(0).close()
        time.sleep(0.2)
        status, _ = http_request(svc.http_port, "GET", "/", source_ip="127.0.0.3")
        assert status == 403  # a slot is free again: the request is answered (anonymous)
        assert "too many connections from 127.0.0.1 (3)" in logs.text
        assert "too many connections (5)" in logs.text
    finally:
        for sock in held:
            sock.close()
        svc.stop()


def test_handshake_and_first_byte_timeouts(tight: ServiceThread) -> None:
    with connect(tight.rtmp_port) as rtmp, connect(tight.http_port) as shared:
        rtmp.sendall(b"\x03" + bytes(700))  # C0 + half a C1, then silence; `shared`: nothing
        start = time.monotonic()
        assert server_closes(rtmp, TIGHT.handshake_timeout_s + TIMER_SLACK_S)
        assert server_closes(shared, TIGHT.handshake_timeout_s + TIMER_SLACK_S)
        assert time.monotonic() - start >= TIGHT.handshake_timeout_s - 0.1


def test_connect_to_publish_timeout_starts_after_the_handshake(
    tight: ServiceThread, logs: pytest.LogCaptureFixture
) -> None:
    peer = ScriptedPeer()
    with connect(tight.rtmp_port) as sock:
        start = time.monotonic()
        sock.sendall(peer.c0c1())
        received = b""
        while len(received) < SERVER_HANDSHAKE_BYTES:
            received += sock.recv(65536)
        sock.sendall(peer.c2(received[1:1537]) + peer.connect())
        # Past the handshake timeout the connection lives: only the publish deadline applies.
        assert not server_closes(sock, TIGHT.handshake_timeout_s + 0.5)
        assert server_closes(sock, TIGHT.publish_timeout_s + TIMER_SLACK_S)
        assert time.monotonic() - start >= TIGHT.publish_timeout_s - 0.1
    assert "no publish within the time limit" in logs.text


def test_http_idle_and_slowloris_timeout(tight: ServiceThread) -> None:
    with connect(tight.http_port) as slow:
        slow.sendall(b"GET /live/?live HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # never finishes
        assert server_closes(slow, TIGHT.http_idle_timeout_s + TIMER_SLACK_S + 1.0)


def test_concurrent_http_requests_are_capped_with_503(tight: ServiceThread) -> None:
    stuck = []
    for name, ip in (("held1", "127.0.0.2"), ("held2", "127.0.0.3")):  # waiting for bodies
        sock = connect(tight.http_port, ip)
        sock.sendall(f"PUT /{BUCKET}/{name}?live HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     "Content-Length: 100\r\n\r\n<Live".encode())  # fmt: skip
        stuck.append(sock)
    time.sleep(0.3)
    status, body = http_request(tight.http_port, "GET", f"/{BUCKET}/?live")
    assert status == 503 and b"ServiceUnavailable" in body
    for sock in stuck:
        sock.sendall(b" " * 95)  # complete the (malformed) bodies: 400, slots freed
        assert b" 400 " in sock.recv(65536).split(b"\r\n", 1)[0]
        sock.close()
    status, _ = http_request(tight.http_port, "GET", f"/{BUCKET}/?live")
    assert status == 200


def test_trickled_request_body_is_cut_off(tight: ServiceThread) -> None:
    """A signed PUT whose body trickles in held a request slot for as long as it liked."""
    with connect(tight.http_port) as trickle:
        trickle.sendall(f"PUT /{BUCKET}/trickle?live HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                        "Content-Length: 1000\r\n\r\n<".encode())  # fmt: skip
        answer = b""
        started = time.monotonic()
        deadline = started + TIGHT.http_body_timeout_s + TIMER_SLACK_S + 2.0
        trickle.settimeout(0.2)
        while time.monotonic() < deadline and b"</Error>" not in answer:
            try:
                answer += trickle.recv(65536)
            except TimeoutError:
                trickle.sendall(b" ")  # one byte every 0.2 s: alive, never done
        assert b" 400 " in answer.split(b"\r\n", 1)[0] and b"RequestTimeout" in answer
        assert b"Connection: close" in answer
        assert time.monotonic() - started < TIGHT.http_body_timeout_s + TIMER_SLACK_S + 1.0


def _non_reader(port: int, source_ip: str, path: str) -> socket.socket:
    """A client that asks for an object and never reads it (a tiny receive buffer)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.bind((source_ip, 0))
    sock.connect(("127.0.0.1", port))
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    return sock


def _drained_bytes(sock: socket.socket, timeout_s: float) -> int:
    """Everything the server sent before it closed the connection (or the timeout)."""
    total = 0
    sock.settimeout(timeout_s)
    with contextlib.suppress(OSError):
        while chunk := sock.recv(1 << 20):
            total += len(chunk)
    return total


BIG_OBJECT_BYTES = 10 * 1024 * 1024  # far more than the kernel buffers of both sides hold


@pytest.fixture(scope="module")
def big_object(tight: ServiceThread) -> str:
    path = tight.object_path("big/segment.ts")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(os.urandom(BIG_OBJECT_BYTES))
    return f"/{BUCKET}/big/segment.ts"


def test_clients_that_stop_reading_are_cut_off(tight: ServiceThread, big_object: str) -> None:
    """Two viewers that never read a 10 MB segment kept max_http_requests = 2 full (503 for
    everyone) for minutes; now each is cut off once it takes nothing for the stall timeout."""
    readers = [_non_reader(tight.http_port, ip, big_object) for ip in ("127.0.0.4", "127.0.0.5")]
    try:
        time.sleep(0.3)
        status, _ = http_request(tight.http_port, "GET", f"/{BUCKET}/?live")
        assert status == 503  # both slots held by the non-readers
        deadline = time.monotonic() + TIGHT.http_send_stall_timeout_s + TIMER_SLACK_S + 2.0
        while status != 200 and time.monotonic() < deadline:
            time.sleep(0.2)
            status, _ = http_request(tight.http_port, "GET", f"/{BUCKET}/?live")
        assert status == 200
        for reader in readers:  # cut off: far less than the object arrived before the close
            assert _drained_bytes(reader, 5.0) < BIG_OBJECT_BYTES
    finally:
        for reader in readers:
            reader.close()


def test_one_address_holds_only_its_share_of_request_slots(
    tight: ServiceThread, big_object: str
) -> None:
    reader = _non_reader(tight.http_port, "127.0.0.6", big_object)
    try:
        time.sleep(0.3)
        status, body = http_request(
            tight.http_port, "GET", f"/{BUCKET}/?live", source_ip="127.0.0.6"
        )
        assert status == 503 and b"your address" in body
        status, _ = http_request(tight.http_port, "GET", f"/{BUCKET}/?live", source_ip="127.0.0.7")
        assert status == 200  # the other slot is anyone else's
    finally:
        reader.close()


def test_xml_body_limit(tight: ServiceThread) -> None:
    body = (b"<LiveChannelConfiguration><Target><Type>HLS</Type></Target>"
            b"</LiveChannelConfiguration>")  # fmt: skip
    padded = body.replace(
        b"<Target>", b" " * (TIGHT.max_xml_body_bytes + 1 - len(body)) + b"<Target>"
    )
    status, answer = http_request(tight.http_port, "PUT", f"/{BUCKET}/xmlcap?live", padded)
    assert status == 400 and b"MalformedXML" in answer
    status, _ = http_request(tight.http_port, "PUT", f"/{BUCKET}/xmlcap?live", body)
    assert status == 200


# --- publishers -------------------------------------------------------------------------------


def test_idle_publisher_is_disconnected_and_recorded(tight: ServiceThread, short_flv: Path) -> None:
    create_channel(tight.bucket(), "idle", frag_duration=1, frag_count=3)
    with session_for(tight, "idle") as s:
        assert s.publish().code == "NetStream.Publish.Start"
        s.send(flv_tags(short_flv)[:60])
        sent_at_ms = time.time() * 1000
        waited_s = s.wait_closed(TIGHT.idle_timeout_s + TIMER_SLACK_S + 1.0)
        assert waited_s >= TIGHT.idle_timeout_s - 0.3
        refusal = s.error_status()
        assert refusal is not None and "no media for 1 s" in refusal.description
    tight.wait_idle("idle")
    (push,) = tight.call(tight.store.history(BUCKET, "idle", 10))
    assert push.end_ms is not None and push.end_ms >= sent_at_ms
    stat = tight.bucket().get_live_channel_stat("idle")
    assert stat.status == "Idle"


def test_oversized_rtmp_message_closes_the_connection(
    tight: ServiceThread, logs: pytest.LogCaptureFixture
) -> None:
    create_channel(tight.bucket(), "bigmsg", frag_duration=1, frag_count=3)
    with session_for(tight, "bigmsg") as s:
        assert s.publish().code == "NetStream.Publish.Start"
        s.send([(9, 0, b"\x17\x01" + bytes(TIGHT.max_rtmp_message_bytes))])
        s.wait_closed(5.0)
    assert "protocol error" in logs.text and str(TIGHT.max_rtmp_message_bytes) in logs.text


def test_oversized_chunk_size_closes_the_connection(tight: ServiceThread) -> None:
    create_channel(tight.bucket(), "bigchunk", frag_duration=1, frag_count=3)
    with session_for(tight, "bigchunk", chunk_size=TIGHT.max_rtmp_chunk_size + 1) as s:
        with pytest.raises(AssertionError, match="no onStatus"):
            s.publish()
        assert s.closed_by_server
    with session_for(tight, "bigchunk", chunk_size=TIGHT.max_rtmp_chunk_size) as s:
        assert s.publish().code == "NetStream.Publish.Start"


def test_oversized_access_unit_kicks_the_publisher(tight: ServiceThread, short_flv: Path) -> None:
    create_channel(tight.bucket(), "bigau", frag_duration=1, frag_count=3)
    tags = flv_tags(short_flv)
    with session_for(tight, "bigau") as s:
        assert s.publish().code == "NetStream.Publish.Start"
        s.send(tags[:30])
        s.send(
            [(9, tags[29][1] + 33, b"\x27\x01\x00\x00\x00" + bytes(TIGHT.max_access_unit_bytes))]
        )
        s.wait_closed(5.0)
        refusal = s.error_status()
        assert refusal is not None and f"over the {TIGHT.max_access_unit_bytes}-byte limit" in (
            refusal.description
        )
    tight.wait_idle("bigau")


def test_segment_size_limit_forces_cuts(tight: ServiceThread, short_flv: Path) -> None:
    create_channel(tight.bucket(), "bigseg", frag_duration=5, frag_count=3)
    tags = flv_tags(short_flv)
    largest_frame = max(len(body) for _, _, body in tags)
    with session_for(tight, "bigseg") as s:
        assert s.publish().code == "NetStream.Publish.Start"
        s.send(tags, pace=4.0)  # 6 s of media in 1.5 s: under the idle timeout
        s.client.unpublish()
        s._flush()
    tight.wait_idle("bigseg")
    segments = tight.call(tight.store.segments_between(BUCKET, "bigseg", 0, 2**62))
    total = sum(seg.size for seg in segments)
    assert len(segments) >= total // (TIGHT.max_segment_bytes + largest_frame * 2)
    assert len(segments) > 2  # 6 s at FragDuration 5 would be 2 segments without the limit
    ts_overhead = 1.1  # TS packetisation adds ~5-10 % to the frame bytes
    for seg in segments:
        assert seg.size <= (TIGHT.max_segment_bytes + largest_frame) * ts_overhead + 4096, seg
