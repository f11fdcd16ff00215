"""An unauthenticated RTMP client cannot hold more memory than the partial-message limit
counts, and a closed connection's memory comes back without the cyclic garbage collector.

The attack (tests/robustness/pinning.py): one 4 KiB chunk of a large message per ~250 KiB of
other traffic. A reader keeping the partial message as slices of its input pinned every
round's whole input buffer (~60x what it counted); a command table of bound methods on each
connection made every connection a reference cycle, so what it held stayed until a full
collection.
"""

from __future__ import annotations

import gc
import socket
import time
import tracemalloc
import weakref
from collections.abc import Iterator
from pathlib import Path

import pytest

from livechannel.rtmp.connection import ServerConnection
from livechannel.store.base import Acl
from tests.robustness import pinning
from tests.robustness.rtmp_session import flv_tags, session_for
from tests.robustness.serve_process import ServeProcess
from tests.support.service import ServiceThread, create_channel

ROUNDS = 120  # ~30 MB of attack traffic, 480 KiB of it the partial message
# What a held byte may cost beyond what is counted: the allocator's rounding.
GROWTH_SLACK = 1.125
FIXED_SLACK_BYTES = 512 * 1024  # the connection's own objects, the last input, tracemalloc
WAIT_S = 10.0


@pytest.fixture
def collector_off() -> Iterator[None]:
    """The cyclic collector off: only reference counting may free what a test drops."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def test_partial_message_holds_what_it_counts() -> None:
    conn = ServerConnection()
    head, writer = pinning.preamble()
    conn.receive_data(head)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        fed = 0
        for data in pinning.rounds(writer, ROUNDS):
            conn.receive_data(data)
            fed += len(data)
            del data
            while conn.next_event() is not None:
                pass
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    counted = conn._transport.reader.held_bytes
    assert ROUNDS * pinning.CHUNK_BYTES <= counted <= ROUNDS * (pinning.CHUNK_BYTES + 128)
    assert fed > 60 * counted
    assert held <= counted * GROWTH_SLACK + FIXED_SLACK_BYTES, (held, counted)


def test_a_dropped_connection_is_freed_without_the_collector(collector_off: None) -> None:
    conn = ServerConnection()
    head, writer = pinning.preamble()
    conn.receive_data(head)
    for data in pinning.rounds(writer, 3):
        conn.receive_data(data)
    gone = weakref.ref(conn)
    del conn
    assert gone() is None


def _wait(condition: object, what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {WAIT_S} s: {what}")
        time.sleep(0.02)


def test_closed_edge_connections_are_freed_without_the_collector(
    tmp_path: Path, short_flv: Path, collector_off: None
) -> None:
    """Through a real service: an attacking connection and a publishing one (whose media
    sink pointed back at its protocol) are freed by reference counting once closed."""
    with ServiceThread(tmp_path / "data", acl=Acl.PUBLIC_READ_WRITE).start() as svc:
        server = svc.ingest_server()
        create_channel(svc.bucket(), "pin")
        sock = pinning.attack(svc.rtmp_port, 3)
        _wait(lambda: len(server.connections) == 1, "the attack connected")
        [attacker] = server.connections
        refs = [weakref.ref(attacker), weakref.ref(attacker.conn)]
        del attacker
        with session_for(svc, "pin") as session:
            assert session.publish().code == "NetStream.Publish.Start"
            session.send(flv_tags(short_flv)[:40])
            _wait(lambda: len(server.connections) == 2, "the publisher connected")
            [publisher] = [c for c in server.connections if c.pipeline is not None]
            refs += [weakref.ref(publisher), weakref.ref(publisher.conn)]
            del publisher
        sock.close()
        _wait(lambda: not server.connections, "both connections closed")
        svc.wait_idle("pin")
        _wait(lambda: not server.tasks, "the push's tasks ended")
        # A heartbeat round in flight may still hold its list of sessions for a moment.
        _wait(lambda: [ref() for ref in refs] == [None] * len(refs), "all freed")


def _rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


ATTACKERS = 4  # connections at once, each ROUNDS_LIVE rounds
ROUNDS_LIVE = 400  # ~100 MB per connection; 1.6 MiB of it counted
RSS_SLACK_BYTES = 24 * 1024 * 1024  # allocator and interpreter noise around the service


@pytest.mark.slow
def test_attack_on_a_real_server_stays_within_the_bound(tmp_path: Path) -> None:
    """`livechannel serve` in its own process, attacked over real sockets: its RSS grows by
    at most what the partial-message limit counts, and is back once the attackers leave."""
    serve = ServeProcess(tmp_path / "data").start()
    try:
        assert serve.proc is not None
        pid = serve.proc.pid
        time.sleep(1.0)
        baseline = _rss(pid)
        socks: list[socket.socket] = [
            pinning.attack(serve.rtmp_port, ROUNDS_LIVE) for _ in range(ATTACKERS)
        ]
        time.sleep(1.0)  # the server has read everything sent
        during = _rss(pid)
        counted = ATTACKERS * ROUNDS_LIVE * pinning.CHUNK_BYTES
        for sock in socks:
            sock.close()
        time.sleep(2.0)
        after = _rss(pid)
        print(f"RSS baseline {baseline >> 20} MiB, under attack {during >> 20} MiB, after "
              f"{after >> 20} MiB; counted {counted >> 20} MiB")  # fmt: skip
        assert during - baseline <= counted * GROWTH_SLACK + RSS_SLACK_BYTES
        assert after - baseline <= RSS_SLACK_BYTES
    finally:
        serve.terminate(WAIT_S)
