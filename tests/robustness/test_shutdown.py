"""Graceful shutdown (docs/robustness.md): SIGTERM in the middle of two real pushes.

The service flushes each open (partial) segment, writes the final playlists, closes the push
records, and exits within its documented bound (server.SHUTDOWN_TIMEOUT_S).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from livechannel.server import DB_FILE, SHUTDOWN_TIMEOUT_S
from livechannel.store.base import Push, Segment
from livechannel.store.sqlite import SqliteStore
from tests.robustness.serve_process import BUCKET, ServeProcess
from tests.support import publishers
from tests.support.hls_validator import assert_segments_exist, validate_media_playlist
from tests.support.service import create_channel

CHANNELS = ("term-a", "term-b")
FRAG_S = 3  # a lost open segment would lose up to 3 s of media: clearly measurable
PROCESS_EXIT_SLACK_S = 5.0  # interpreter teardown after serve() returns
MEDIA_SLACK_MS = 1_200  # encoder start-up plus the frames in flight at the signal


async def _records(data: Path, channel: str) -> tuple[list[Push], list[Segment]]:
    store = await SqliteStore.open(str(data / DB_FILE))
    try:
        return (await store.history(BUCKET, channel, 10),
                await store.segments_between(BUCKET, channel, 0, 2**62))  # fmt: skip
    finally:
        await store.close()


def test_sigterm_flushes_and_exits_in_time(tmp_path: Path) -> None:
    data = tmp_path / "data"
    svc = ServeProcess(data).start()
    pushers = []
    try:
        for channel in CHANNELS:
            create_channel(svc.bucket(), channel, frag_duration=FRAG_S, frag_count=5)
            cmd = publishers.ffmpeg_live(svc.signed_publish_url(channel), duration_s=60,
                                         gop_s=1, bframes=0, size="320x180")  # fmt: skip
            pushers.append(publishers.start(cmd))
        deadline = time.monotonic() + 20
        while not all(len(list(svc.object_path(c).glob("*.ts"))) >= 2 for c in CHANNELS):
            assert time.monotonic() < deadline, "publishers did not produce segments"
            time.sleep(0.1)
        time.sleep(1.5)  # well inside the next segment: there is a partial one to flush
        signalled_ms = time.time_ns() // 1_000_000
        took_s = svc.terminate(SHUTDOWN_TIMEOUT_S + PROCESS_EXIT_SLACK_S)
    finally:
        for proc in pushers:
            publishers.stop(proc)
        svc.kill()
    assert svc.proc is not None and svc.proc.returncode == 0, svc.log()[-3000:]
    assert took_s <= SHUTDOWN_TIMEOUT_S + PROCESS_EXIT_SLACK_S

    for channel in CHANNELS:
        (push,), segments = asyncio.run(_records(data, channel))
        assert push.end_ms is not None and abs(push.end_ms - signalled_ms) < 2_000, push
        media_ms = sum(seg.duration_ms for seg in segments)
        assert media_ms >= signalled_ms - push.start_ms - MEDIA_SLACK_MS, (
            f"{channel}: {media_ms} ms stored of {signalled_ms - push.start_ms} ms pushed"
        )
        assert segments[-1].duration_ms < FRAG_S * 1000, "the last one is the flushed partial"
        text = svc.object_path(f"{channel}/playlist.m3u8").read_text()
        playlist = validate_media_playlist(text)
        assert playlist.segments[-1].uri == segments[-1].key.rsplit("/", 1)[1], text
        assert_segments_exist(
            playlist, lambda uri, c=channel: svc.object_path(f"{c}/{uri}").exists()
        )
    log = svc.log()
    assert log.count("push ended (server shutting down)") == len(CHANNELS), log[-3000:]
    assert "stopped" in log
