"""The RTMP edge (ingest/edge.py) driven through a fake transport: its states, the push it
owns, and what it does to the socket, without a real network (tests/support/fake_edge.py).
The same paths over real sockets and real publishers are in tests/e2e and tests/robustness."""

from __future__ import annotations

import asyncio
import gc
import logging
import socket
import weakref
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from livechannel.config import Limits
from livechannel.ingest import reads as reads_module
from livechannel.ingest.edge import EdgeState
from livechannel.rtmp.client import PublishStarted
from samples.make_sample import SampleSpec, make_sample
from tests.support.fake_edge import BUCKET, CHANNEL, EdgeHarness
from tests.support.rtmp_peer import ScriptedPeer, ServerView
from tests.support.rtmp_publisher import FlvTag, read_flv

# 3 s of 160x90 video with a 1 s GOP and audio: three keyframe cuts at FragDuration 1.
SAMPLE = SampleSpec(duration_s=3, width=160, height=90, fps=10, gop_s=1, bframes=0)


@pytest.fixture(scope="module")
def tags(tmp_path_factory: pytest.TempPathFactory) -> list[FlvTag]:
    flv = make_sample(tmp_path_factory.mktemp("edge") / "tiny.flv", SAMPLE)
    return [t for t in read_flv(Path(flv)) if t.type_id in (8, 9)]


@pytest.fixture
async def h() -> AsyncIterator[EdgeHarness]:
    harness = await EdgeHarness.start(frag_duration_s=1)
    try:
        yield harness
    finally:
        await harness.stop()


async def publish(h: EdgeHarness) -> None:
    h.client.initiate()
    await h.until(lambda: any(isinstance(e, PublishStarted) for e in h.events), "Publish.Start")
    assert h.protocol.state is EdgeState.PUBLISHING


def send_tags(h: EdgeHarness, tags: list[FlvTag]) -> None:
    for tag in tags:
        if tag.type_id == 9:
            h.client.send_video(tag.timestamp_ms, tag.body)
        else:
            h.client.send_audio(tag.timestamp_ms, tag.body)
    h.send(h.client.data_to_send())


async def test_states_from_handshake_to_unpublish(h: EdgeHarness, tags: list[FlvTag]) -> None:
    assert h.protocol.state is EdgeState.HANDSHAKE
    h.client.initiate()
    await h.exchange()
    assert h.protocol.state is EdgeState.HANDSHAKE  # C0C1 in, C2 not yet
    await h.until(lambda: h.protocol.state is not EdgeState.HANDSHAKE, "handshake")
    await h.until(lambda: any(isinstance(e, PublishStarted) for e in h.events), "Publish.Start")
    assert h.protocol.state is EdgeState.PUBLISHING
    live = await h.store.live_push(BUCKET, CHANNEL)
    assert live is not None and h.server.deps.registry.sessions[(BUCKET, CHANNEL)] is not None

    send_tags(h, tags)
    h.client.unpublish()
    await h.exchange()
    await h.protocol.finished
    assert h.protocol.state is EdgeState.UNPUBLISHED
    # The push is over (history closed, every segment stored) but the socket stays open
    # for the publisher to close (GStreamer's rtmp2sink treats our close as an error).
    assert await h.store.live_push(BUCKET, CHANNEL) is None
    (ended,) = await h.store.history(BUCKET, CHANNEL, 10)
    assert ended.end_ms is not None
    segments = await h.store.segments_between(BUCKET, CHANNEL, 0, 2**62)
    assert len(segments) == 3
    assert sum(s.duration_ms for s in segments) == pytest.approx(3000, abs=150)
    assert not h.transport.closed
    assert (BUCKET, CHANNEL) not in h.server.deps.registry.sessions
    h.transport.peer_closes()
    assert h.protocol.state is EdgeState.CLOSED


async def test_kick_sends_the_reason_then_fin(h: EdgeHarness) -> None:
    await publish(h)
    h.protocol.kick("channel disabled")
    await h.protocol.finished
    await h.exchange()
    assert "NetStream.Publish.Rejected" in h.statuses()
    assert h.transport.eof_sent and not h.transport.closed  # FIN, then linger for its close
    assert h.protocol.state is EdgeState.LINGERING
    assert await h.store.live_push(BUCKET, CHANNEL) is None


async def test_kicked_publisher_sending_fcunpublish_gets_no_write_after_eof(
    h: EdgeHarness,
) -> None:
    """A kicked publisher answers our status with FCUnpublish + deleteStream (OBS, ffmpeg):
    after our FIN nothing more may be written (asyncio: "write() after write_eof()")."""
    await publish(h)
    h.protocol.kick("channel disabled")
    await h.protocol.finished
    assert h.transport.eof_sent
    h.client.receive_data(h.transport.take())  # the kick's onStatus, written before the FIN
    h.client.unpublish()
    h.send(h.client.data_to_send())  # FakeTransport.write raises after write_eof, as asyncio's
    assert h.transport.out == b""


async def test_refused_play_closes_at_once_and_says_why(
    h: EdgeHarness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="livechannel.ingest.edge")
    peer, view = ScriptedPeer(), ServerView()
    h.send(peer.c0c1())
    view.feed(h.transport.take())
    h.send(peer.c2(view.s1))
    h.send(peer.connect() + peer.command("createStream", 2.0, None))
    h.send(peer.command("play", 0.0, None, CHANNEL, csid=8, stream_id=1))
    view.feed(h.transport.take())
    assert [s["code"] for _, s in view.statuses()] == ["NetStream.Play.Failed"]
    assert h.transport.closed, "a refused player's socket stayed open"
    assert h.protocol.state is EdgeState.CLOSED
    assert any("refused play" in r.getMessage() for r in caplog.records), caplog.text


async def test_refused_publish_closes_after_the_status() -> None:
    h = await EdgeHarness.start()
    try:
        h.client = type(h.client)(BUCKET, "no-such-channel", f"rtmp://127.0.0.1/{BUCKET}")
        h.client.initiate()
        await h.until(lambda: h.transport.closed, "the close")
        assert h.statuses() == ["NetStream.Publish.BadName"]
        assert h.protocol.state is EdgeState.CLOSED
        assert await h.store.live_push(BUCKET, "no-such-channel") is None
    finally:
        await h.stop()


async def test_publisher_gone_mid_push_ends_the_push(h: EdgeHarness, tags: list[FlvTag]) -> None:
    await publish(h)
    send_tags(h, tags[: len(tags) // 2])
    h.transport.peer_closes()
    await h.protocol.finished
    assert h.protocol.state is EdgeState.CLOSED
    assert await h.store.live_push(BUCKET, CHANNEL) is None
    assert await h.store.segments_between(BUCKET, CHANNEL, 0, 2**62)  # flushed on the way out


async def test_storage_backpressure_pauses_reading_then_resumes(tags: list[FlvTag]) -> None:
    h = await EdgeHarness.start(Limits(upload_queue_segments=1), frag_duration_s=1)
    gate = asyncio.Event()
    put = h.storage.put

    async def slow_put(key: str, data: bytes, content_type: str):  # type: ignore[no-untyped-def]
        await gate.wait()
        return await put(key, data, content_type)

    h.storage.put = slow_put  # type: ignore[method-assign]
    try:
        await publish(h)
        send_tags(h, tags)
        await asyncio.sleep(0.01)
        assert h.protocol.state is EdgeState.HELD and not h.transport.reading
        gate.set()
        await h.until(lambda: h.protocol.state is EdgeState.PUBLISHING, "room in the queue")
        assert h.transport.reading
    finally:
        gate.set()
        await h.stop()


async def test_handshake_deadline_closes_a_silent_connection() -> None:
    h = await EdgeHarness.start(Limits(handshake_timeout_s=0.01))
    try:
        await h.until(lambda: h.transport.closed, "the handshake deadline")
        assert h.protocol.state is EdgeState.CLOSED
    finally:
        await h.stop()


async def test_a_closed_publishing_connection_is_freed_without_the_collector(
    tags: list[FlvTag],
) -> None:
    """The edge holds its push and the push calls back into the edge (kicks, log lines): once
    the push ended and the socket closed, reference counting alone frees both."""
    h = await EdgeHarness.start(frag_duration_s=1)
    gc.collect()
    gc.disable()
    try:
        await publish(h)
        send_tags(h, tags)
        h.client.unpublish()
        await h.exchange()
        await h.protocol.finished
        gone = [weakref.ref(h.protocol), weakref.ref(h.protocol.push)]
        h.transport.peer_closes()
        await asyncio.gather(*h.server.tasks)
        del h.protocol, h.transport.protocol
        assert [ref() for ref in gone] == [None, None]
    finally:
        gc.enable()
        await h.stop()


async def test_a_publisher_is_read_once_per_rest_while_few_publish(
    h: EdgeHarness, tags: list[FlvTag]
) -> None:
    """After a read, a publishing connection's reading pauses until the process's next
    wake-up (READ_REST_S): one timer for all resting connections, not a read per write."""
    await publish(h)
    send_tags(h, tags[:5])
    assert h.protocol.resting and not h.transport.reading
    await h.until(lambda: h.transport.reading, "the rest to end")
    assert not h.protocol.resting
    send_tags(h, tags[5:10])  # rests again: no timer of its own per connection
    assert h.protocol.resting and len(h.server.reads._resting) == 1


async def test_no_rest_with_many_publishers(
    h: EdgeHarness, tags: list[FlvTag], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With more publishers than READ_REST_MAX_PUBLISHERS, reads are not delayed."""
    monkeypatch.setattr(reads_module, "READ_REST_MAX_PUBLISHERS", 0)
    await publish(h)
    send_tags(h, tags)
    assert not h.protocol.resting and h.transport.reading


async def test_a_large_read_does_not_rest(
    h: EdgeHarness, tags: list[FlvTag], monkeypatch: pytest.MonkeyPatch
) -> None:
    """More is waiting after a read of READ_REST_MAX_BYTES or more: resting would cap the
    publisher's rate, so it is read on at once."""
    monkeypatch.setattr(reads_module, "READ_REST_MAX_BYTES", 1000)
    await publish(h)
    send_tags(h, tags[:20])  # one read of far more than 1000 bytes
    assert not h.protocol.resting and h.transport.reading


NOT_OPEN_FD = 1_000_000  # above any descriptor these tests open


class _GoneSocket:
    """What the transport says its socket is once the peer's descriptor is closed (a number
    no longer open), as when a publisher leaves while its publish is being decided."""

    family, type, proto = socket.AF_INET, socket.SOCK_STREAM, 0

    def fileno(self) -> int:
        return NOT_OPEN_FD


async def test_a_socket_gone_when_the_publish_is_accepted_is_not_an_error(
    h: EdgeHarness, caplog: pytest.LogCaptureFixture
) -> None:
    extra = h.transport.get_extra_info
    h.transport.get_extra_info = (  # type: ignore[method-assign]
        lambda name, default=None: _GoneSocket() if name == "socket" else extra(name, default)
    )
    with caplog.at_level(logging.ERROR):
        await publish(h)
    assert h.protocol.batch is None  # nothing to pace, and no "internal error" refusal
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
