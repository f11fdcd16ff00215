"""Crash safety (docs/robustness.md): `kill -9` in the middle of two real pushes, then a restart.

Afterwards every playlist is valid and names only stored segments, the interrupted pushes are
closed in the history at their last media (heartbeat), no channel is left Live, the playlist
of a channel nobody republishes gets its #EXT-X-ENDLIST, and a republish continues the
numbering without reusing a name.
"""

from __future__ import annotations

import time
from pathlib import Path

from tests.robustness.serve_process import ServeProcess
from tests.support import publishers
from tests.support.hls_validator import (
    PlaylistHistory,
    assert_segments_exist,
    validate_media_playlist,
)
from tests.support.service import create_channel

CHANNELS = ("cam-a", "cam-b")
MIN_SEGMENTS = 3
END_GRACE_S = 2.0
# The sweeper closes a push whose heartbeat is older than STALE_PUSH_MS (5 s) every 2 s.
STALE_CLOSE_WITHIN_S = 12.0
HEARTBEAT_SLACK_S = 2.5  # end time = last heartbeat (every 1 s), in whole seconds


def segment_names(svc: ServeProcess, channel: str) -> set[int]:
    return {int(p.stem) for p in svc.object_path(channel).glob("*.ts")}


def playlist_text(svc: ServeProcess, channel: str) -> str:
    return svc.object_path(f"{channel}/playlist.m3u8").read_text()


def wait_for(predicate, timeout_s: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def test_kill_9_mid_push_then_restart(tmp_path: Path, short_flv: Path) -> None:
    data = tmp_path / "data"
    config = tmp_path / "c.toml"
    config.write_text(f"end_grace_s = {END_GRACE_S}\ndemo_channel = ''\n")
    svc = ServeProcess(data, config=config).start()
    pushers = []
    try:
        for channel in CHANNELS:
            create_channel(svc.bucket(), channel, frag_duration=1, frag_count=3)
            cmd = publishers.ffmpeg_live(svc.signed_publish_url(channel), duration_s=60,
                                         gop_s=1, bframes=0, size="320x180")  # fmt: skip
            pushers.append(publishers.start(cmd))
        wait_for(lambda: all(len(segment_names(svc, c)) >= MIN_SEGMENTS for c in CHANNELS),
                 20.0, "publishers did not produce segments")  # fmt: skip
        svc.kill()
        killed_at_s = time.time()
    finally:
        for proc in pushers:
            publishers.stop(proc)
        svc.kill()

    history = {c: PlaylistHistory() for c in CHANNELS}
    before = {}
    for channel in CHANNELS:  # what a CDN would serve right now: whole, consistent
        playlist = history[channel].add(playlist_text(svc, channel))
        assert_segments_exist(
            playlist, lambda uri, c=channel: svc.object_path(f"{c}/{uri}").exists()
        )
        before[channel] = segment_names(svc, channel)

    svc = ServeProcess(data, config=config).start()
    try:
        bucket = svc.bucket()
        wait_for(lambda: all(bucket.get_live_channel_stat(c).status == "Idle" for c in CHANNELS),
                 STALE_CLOSE_WITHIN_S, "a channel is stuck Live after the restart")  # fmt: skip
        for channel in CHANNELS:
            (record,) = bucket.get_live_channel_history(channel).records
            assert record.end_time, "interrupted push not closed"
            assert abs(record.end_time - killed_at_s) <= HEARTBEAT_SLACK_S, (
                record.end_time,
                killed_at_s,
            )
        # Nobody republishes cam-b: its playlist ends after the grace period.
        wait_for(lambda: "#EXT-X-ENDLIST" in playlist_text(svc, "cam-b"),
                 STALE_CLOSE_WITHIN_S + END_GRACE_S, "cam-b never got its ENDLIST")  # fmt: skip
        ended = history["cam-b"].add(playlist_text(svc, "cam-b"))
        assert_segments_exist(ended, lambda uri: svc.object_path(f"cam-b/{uri}").exists())

        # cam-a is republished: numbering continues, no name is reused.
        r = publishers.run(publishers.ffmpeg_copy(short_flv, svc.signed_publish_url("cam-a"),
                                                  realtime=False), timeout_s=30)  # fmt: skip
        assert r.returncode == 0, r.stderr
        wait_for(lambda: bucket.get_live_channel_stat("cam-a").status == "Idle", 15.0,
                 "republish did not end")  # fmt: skip
        after = history["cam-a"].add(playlist_text(svc, "cam-a"))
        new_names = segment_names(svc, "cam-a") - before["cam-a"]
        assert new_names and min(new_names) > max(before["cam-a"])
        assert after.discontinuity_sequence or any(seg.discontinuity for seg in after.segments)
        assert_segments_exist(after, lambda uri: svc.object_path(f"cam-a/{uri}").exists())
        vod = bucket.get_vod_playlist("cam-a", int(killed_at_s) - 60, int(time.time()) + 1)
        validate_media_playlist(vod.playlist)
    finally:
        svc.terminate(30)


def test_ffmpeg_reconnecting_at_once_after_kill_9_and_restart(tmp_path: Path) -> None:
    """An encoder that reconnects the moment the service is back (OBS does) is accepted: the
    restarted node knows the running push is its own earlier one (node identity kept in the
    data dir) and ends it before it accepts publishers, instead of refusing "already live"
    until the stale-push sweep."""
    data = tmp_path / "data"
    config = tmp_path / "c.toml"
    config.write_text("demo_channel = ''\n")
    svc = ServeProcess(data, config=config).start()
    try:
        create_channel(svc.bucket(), "cam", frag_duration=1, frag_count=5)
        first = publishers.start(publishers.ffmpeg_live(
            svc.signed_publish_url("cam"), duration_s=60, gop_s=1, bframes=0, size="320x180"
        ))  # fmt: skip
        try:
            wait_for(lambda: len(segment_names(svc, "cam")) >= 2, 20.0, "no segments")
            svc.kill()
            killed_at_s = time.time()
        finally:
            publishers.stop(first)
    finally:
        svc.kill()
    history = PlaylistHistory()
    history.add(playlist_text(svc, "cam"))
    before = segment_names(svc, "cam")

    svc = ServeProcess(data, config=config).start()
    try:
        again = publishers.ffmpeg_live(svc.signed_publish_url("cam"), duration_s=3, gop_s=1,
                                       bframes=0, size="320x180")  # fmt: skip
        r = publishers.run(again, timeout_s=30)
        assert r.returncode == 0, f"the reconnect was refused: {r.stderr[-1000:]}"
        assert time.time() - killed_at_s < 15, "too slow to prove anything"
        assert "left by this node's previous run" in svc.log()
        bucket = svc.bucket()
        wait_for(lambda: bucket.get_live_channel_stat("cam").status == "Idle", 15.0,
                 "the reconnect did not end")  # fmt: skip
        records = bucket.get_live_channel_history("cam").records
        assert len(records) == 2
        # The interrupted push is closed at its last heartbeat, before the reconnect began.
        interrupted = min(records, key=lambda rec: rec.start_time)
        reconnect = max(records, key=lambda rec: rec.start_time)
        assert interrupted.end_time and interrupted.end_time <= reconnect.start_time
        assert abs(interrupted.end_time - killed_at_s) <= HEARTBEAT_SLACK_S
        after = history.add(playlist_text(svc, "cam"))  # no MEDIA-SEQUENCE going back
        new_names = segment_names(svc, "cam") - before
        assert new_names and min(new_names) > max(before)
        assert any(seg.discontinuity for seg in after.segments) or after.discontinuity_sequence
        assert_segments_exist(after, lambda uri: svc.object_path(f"cam/{uri}").exists())
    finally:
        svc.terminate(30)
