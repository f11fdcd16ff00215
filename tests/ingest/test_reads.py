"""Read batching over a real socket (ingest/reads.py): with many publishers in the process,
a publishing connection's receive low-water mark follows its stream's rate, drops to exactly
what completes a keyframe while one arrives, and drops to one byte when the stream stops.
The marks are read back from the server's own socket (getsockopt), so what is asserted is
what the kernel was told; that the kernel honours SO_RCVLOWAT is socket(7)'s promise, and
what the batching saves is measured in bench/read_bench.py and the benchmark."""

from __future__ import annotations

import gc
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from livechannel.config import HlsConfig
from livechannel.ingest import reads as reads_module
from livechannel.ingest.edge import RtmpProtocol
from livechannel.rtmp.client import ClientConnection, PublishStarted
from livechannel.store.base import SegmentFormat
from samples.make_sample import SampleSpec, make_sample
from tests.support.rtmp_publisher import FlvTag, read_flv, split_url
from tests.support.service import ServiceThread, create_channel

SAMPLE = SampleSpec(duration_s=6, width=640, height=360, fps=30, gop_s=2, bframes=0)
WAIT_S = 10.0  # for the service to do what each step waits on
CHUNK_SIZE = 4096


@pytest.fixture(scope="module")
def tags(tmp_path_factory: pytest.TempPathFactory) -> list[FlvTag]:
    flv = make_sample(tmp_path_factory.mktemp("reads") / "sample.flv", SAMPLE)
    return [t for t in read_flv(flv) if t.type_id in (8, 9)]


@pytest.fixture
def svc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ServiceThread]:
    # Batching is for processes with many publishers: make one publisher many.
    monkeypatch.setattr(reads_module, "READ_REST_MAX_PUBLISHERS", 0)
    with ServiceThread(tmp_path / "data").start() as service:
        create_channel(service.bucket(), "batch")
        yield service


def wait_until(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


class Publisher:
    """A publisher on a blocking socket, writing exactly the bytes a test chooses."""

    def __init__(self, url: str) -> None:
        host, port, app, stream, tc_url = split_url(url)
        self.client = ClientConnection(app, stream, tc_url, chunk_size=CHUNK_SIZE)
        self.sock = socket.create_connection((host, port), timeout=WAIT_S)
        self.client.initiate()
        self.flush()
        while not any(isinstance(e, PublishStarted) for e in self._events()):
            self.client.receive_data(self.sock.recv(65536))
            self.flush()

    def _events(self) -> Iterator[object]:
        while (event := self.client.next_event()) is not None:
            yield event

    def flush(self) -> None:
        self.sock.sendall(self.client.data_to_send())

    def encode(self, tag: FlvTag) -> bytes:
        send = self.client.send_video if tag.type_id == 9 else self.client.send_audio
        send(tag.timestamp_ms, tag.body)
        return self.client.data_to_send()


def batching_connection(svc: ServiceThread) -> RtmpProtocol:
    """The server's side of the one publisher, once its push is accepted with a batch."""
    wait_until(lambda: any(c.batch for c in svc.ingest_server().connections), "a batch")
    [conn] = [c for c in svc.ingest_server().connections if c.batch is not None]
    return conn


def publishing(svc: ServiceThread) -> bool:
    return any(c.publishing for c in svc.ingest_server().connections)


def paced(pub: Publisher, tags: list[FlvTag]) -> Iterator[FlvTag]:
    """Send each tag at its time (a real-time publisher), yielding it once it is sent."""
    start = time.monotonic()
    for tag in tags:
        time.sleep(max(0.0, start + tag.timestamp_ms / 1000 - time.monotonic()))
        pub.sock.sendall(pub.encode(tag))
        yield tag


def mark_of(conn: RtmpProtocol) -> int:
    assert conn.batch is not None
    return conn.batch.sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT)


def test_the_mark_follows_the_rate_then_a_keyframe_then_a_stall(
    svc: ServiceThread, tags: list[FlvTag]
) -> None:
    pub = Publisher(svc.signed_publish_url("batch"))
    try:
        conn = batching_connection(svc)
        keyframes = [i for i, t in enumerate(tags) if t.type_id == 9 and t.is_video_keyframe]
        second = keyframes[1]  # the first GOP goes at its own pace: the rate to batch by
        start = time.monotonic()
        for tag in tags[:second]:
            time.sleep(max(0.0, start + tag.timestamp_ms / 1000 - time.monotonic()))
            pub.sock.sendall(pub.encode(tag))
        rate_bps = conn.received_bytes / (time.monotonic() - start)
        batch = conn.batch
        assert batch is not None
        wait_until(lambda: batch.size > 1, "a tick to measure the rate")
        # READ_BATCH_S of the stream (measured over RATE_TICKS ticks)
        expected = rate_bps * reads_module.READ_BATCH_S
        assert expected / 3 < batch.size < expected * 3, (batch.size, expected)
        assert mark_of(conn) == batch.mark > 1

        # A keyframe arrives: once the part that woke us is read, the mark is exactly what
        # completes it, so it is read the moment it is whole (and not before: the part
        # gains nothing).
        wire = pub.encode(tags[second])
        held_back = len(wire) // 3
        pub.sock.sendall(wire[:-held_back])
        wait_until(lambda: mark_of(conn) == held_back, f"the mark at {held_back}")
        before = conn.received_bytes
        pub.sock.sendall(wire[-held_back:])
        wait_until(lambda: conn.received_bytes == before + held_back, "the keyframe's rest read")
        assert batch.mark == batch.size or batch.mark == 1  # a keyframe no more

        # The stream stops: within two ticks the mark is one byte, so nothing waits unread.
        wait_until(lambda: mark_of(conn) == 1, "the mark back at one byte")

        # The publisher leaves: the batch's socket object lets the descriptor go with it.
        pub.sock.close()
        wait_until(lambda: conn not in svc.ingest_server().connections, "the connection gone")
        assert batch.sock.fileno() == -1
    finally:
        pub.sock.close()


def test_a_borrowed_socket_never_closes_the_descriptor() -> None:
    ours, peer = socket.socketpair()
    try:
        borrowed = reads_module.BorrowedSocket.on(ours)
        borrowed.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, 7)
        assert ours.getsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT) == 7
        del borrowed  # collected: the descriptor stays the owner's
        gc.collect()
        peer.sendall(b"x")
        assert ours.recv(1) == b"x"
        again = reads_module.BorrowedSocket.on(ours)
        again.release()
        with pytest.raises(OSError):  # released: never reaches the descriptor
            again.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, 9)
        assert ours.getsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT) == 7
        ours.sendall(b"y")
        assert peer.recv(1) == b"y"
    finally:
        ours.close()
        peer.close()


def test_few_publishers_rest_by_the_mark_and_a_close_ends_the_rest(
    svc: ServiceThread, tags: list[FlvTag], monkeypatch: pytest.MonkeyPatch
) -> None:
    """While few publish, a connection that was read rests by its mark (REST_MARK_BYTES:
    more than a rest brings, and its receive buffer raised to hold it), and the peer's close
    ends the rest at once instead of at the next tick."""
    monkeypatch.setattr(reads_module, "READ_REST_MAX_PUBLISHERS", 32)
    monkeypatch.setattr(reads_module, "READ_REST_S", 30.0)  # no tick within the test
    pub = Publisher(svc.signed_publish_url("batch"))
    try:
        conn = batching_connection(svc)
        assert conn.paced
        for tag in tags[:30]:
            pub.sock.sendall(pub.encode(tag))
        wait_until(lambda: conn.resting, "a read and a rest")
        assert mark_of(conn) == reads_module.REST_MARK_BYTES
        assert conn.batch is not None
        rcvbuf = conn.batch.sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        assert rcvbuf >= reads_module.REST_MARK_BYTES
        pub.sock.close()
        wait_until(lambda: conn not in svc.ingest_server().connections, "the close seen")
    finally:
        pub.sock.close()


def test_few_publishers_rest_and_are_read_by_the_mark_near_the_cut(
    tmp_path: Path, tags: list[FlvTag]
) -> None:
    """While few publish, a connection rests between the process's ticks away from its cut,
    by the rest's mark (REST_MARK_BYTES, kept until the rest tick ends it); near the cut it
    is read by a mark aimed at it, so the keyframe that cuts is not left waiting for a tick."""
    with ServiceThread(tmp_path / "data").start() as svc:
        create_channel(svc.bucket(), "few", frag_duration=1)  # a cut every GOP (2 s)
        pub = Publisher(svc.signed_publish_url("few"))
        try:
            conn = batching_connection(svc)
            assert conn.batch is not None and conn.push is not None
            batch, pipeline = conn.batch, conn.push.pipeline
            seen: set[tuple[str, bool]] = set()  # (how it is read, the cut near)
            for _ in paced(pub, tags[: len(tags) * 3 // 4]):
                due_ms = pipeline.due_in_ms()
                if due_ms is None or batch.size == 1:
                    continue  # the rate is not known yet
                near = due_ms < reads_module.READ_BATCH_MS
                resting, mark, still = conn.resting, mark_of(conn), conn.resting
                if resting and still:  # a rest keeps its mark until the rest tick ends it
                    assert mark == reads_module.REST_MARK_BYTES
                    seen.add(("rests", near))
                elif not resting and 1 < mark < batch.size:
                    seen.add(("aimed", near))
            assert ("rests", False) in seen, seen
            assert ("aimed", True) in seen, seen
            assert ("aimed", False) not in seen, seen
        finally:
            pub.sock.close()


@pytest.mark.parametrize("low_latency", [False, True], ids=["segments", "ll-hls-parts"])
def test_reads_aim_at_the_cut_and_batch_elsewhere(
    tmp_path: Path, tags: list[FlvTag], monkeypatch: pytest.MonkeyPatch, low_latency: bool
) -> None:
    """What ends the open segment (the keyframe that cuts it) or LL-HLS part is read as it
    comes: when it is nearer than a batch (`due_in_ms` < READ_BATCH_MS), the mark is below the
    stream's batch, and a full batch elsewhere. LL-HLS pushes never rest."""
    monkeypatch.setattr(reads_module, "READ_REST_MAX_PUBLISHERS", 0)
    service = ServiceThread(tmp_path / "data")
    if low_latency:
        hls = HlsConfig(SegmentFormat.FMP4, 1.0)  # parts longer than a batch
        bucket = replace(service.config.buckets[0], hls=hls)
        service.config = replace(service.config, buckets=(bucket,))
    with service.start() as svc:
        create_channel(svc.bucket(), "ll", frag_duration=1)  # a cut every GOP (2 s)
        pub = Publisher(svc.signed_publish_url("ll"))
        try:
            conn = batching_connection(svc)
            assert conn.low_latency == low_latency and conn.push is not None
            assert conn.batch is not None
            batch, pipeline = conn.batch, conn.push.pipeline
            seen: set[tuple[bool, bool]] = set()  # (mark below the batch, the cut near)
            for _ in paced(pub, tags[: len(tags) * 3 // 4]):
                due_ms = pipeline.due_in_ms()
                if due_ms is not None and batch.size > 1 and not batch.conn.keyframe_remaining():
                    near = due_ms < reads_module.READ_BATCH_MS
                    seen.add((mark_of(conn) < batch.size, near))
            assert (False, False) in seen, seen  # batched away from the cut
            assert (True, True) in seen, seen  # aimed near it

            if low_latency:  # a part is due every part target: never rests
                monkeypatch.setattr(reads_module, "READ_REST_MAX_PUBLISHERS", 32)
                before = conn.received_bytes
                for tag in tags[len(tags) * 3 // 4 :]:
                    pub.sock.sendall(pub.encode(tag))
                wait_until(lambda: conn.received_bytes > before + 20_000, "the tags read")
                assert not conn.resting
        finally:
            pub.sock.close()
