"""Channel control with real pushes: Stat shows real live values, history records pushes,
disable kicks the publisher within 1 s, delete and re-create are refused while live."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import oss2
import pytest

from tests.support import publishers
from tests.support.service import BUCKET, ServiceThread, create_channel

KICK_DEADLINE_S = 1.0  # disabling disconnects the publisher within 1 s (docs/api.md)


def wait_live(service: ServiceThread, channel: str, timeout_s: float = 10) -> None:
    deadline = time.monotonic() + timeout_s
    while service.call(service.store.live_push(BUCKET, channel)) is None:
        assert time.monotonic() < deadline, f"{channel} never went live"
        time.sleep(0.05)


def test_stat_history_and_kick(service: ServiceThread) -> None:
    bucket = service.bucket()
    create_channel(bucket, "studio", frag_duration=2, frag_count=3)
    assert bucket.get_live_channel_stat("studio").status == "Idle"
    url = service.signed_publish_url("studio")
    pub = publishers.start(
        publishers.ffmpeg_live(
            url, duration_s=60, size="640x360", fps=25, gop_s=1, sample_rate=48_000
        )
    )
    try:
        wait_live(service, "studio")
        deadline = time.monotonic() + 10
        while True:  # Video/Audio appear once their data has arrived and been measured
            stat = bucket.get_live_channel_stat("studio")
            if stat.video is not None and stat.audio is not None and stat.video.bandwidth > 0:
                break
            assert time.monotonic() < deadline, "stat never showed video and audio"
            time.sleep(0.3)
        time.sleep(3)  # let the frame-rate and bandwidth windows fill
        stat = bucket.get_live_channel_stat("studio")
        assert stat.status == "Live"
        assert stat.remote_addr.startswith("127.0.0.1:")
        assert stat.connected_time
        assert (stat.video.width, stat.video.height) == (640, 360)
        assert 23 <= stat.video.frame_rate <= 27
        assert stat.video.codec == "H264"
        assert 30_000 < stat.video.bandwidth < 500_000  # -b:v 1M of an easy pattern
        assert stat.audio.sample_rate == 48_000
        assert stat.audio.codec == "AAC"
        assert 4_000 < stat.audio.bandwidth < 30_000  # 96 kbit/s AAC

        with pytest.raises(oss2.exceptions.ChannelStillLive):
            bucket.delete_live_channel("studio")
        with pytest.raises(oss2.exceptions.ChannelStillLive):
            create_channel(bucket, "studio", frag_duration=3, frag_count=3)

        start = time.monotonic()
        bucket.put_live_channel_status("studio", "disabled")
        pub.wait(timeout=10)
        took_s = time.monotonic() - start
        assert took_s <= KICK_DEADLINE_S, f"publisher kicked after {took_s:.2f}s"
        assert pub.returncode != 0
        assert bucket.get_live_channel_stat("studio").status == "Disabled"
    finally:
        publishers.stop(pub)
    service.wait_idle("studio")
    history = bucket.get_live_channel_history("studio").records
    assert len(history) == 1
    assert history[0].remote_addr.startswith("127.0.0.1:")
    assert history[0].end_time >= history[0].start_time

    # Refused while disabled; accepted again once enabled.
    r = publishers.run(publishers.ffmpeg_live(url, duration_s=3, gop_s=1), timeout_s=20)
    assert r.returncode != 0 and "channel disabled" in r.stderr
    bucket.put_live_channel_status("studio", "enabled")
    r = publishers.run(publishers.ffmpeg_live(url, duration_s=3, gop_s=1), timeout_s=20)
    assert r.returncode == 0, r.stderr
    service.wait_idle("studio")
    assert len(bucket.get_live_channel_history("studio").records) == 2

    # Deleting the channel keeps its objects.
    keys = [o.key for o in oss2.ObjectIterator(bucket, prefix="studio/")]
    assert any(k.endswith(".ts") for k in keys)
    bucket.delete_live_channel("studio")
    assert [o.key for o in oss2.ObjectIterator(bucket, prefix="studio/")] == keys


def test_vod_playlists_for_a_push(service: ServiceThread, sample_flv: Path, tmp_path: Path) -> None:
    bucket = service.bucket()
    create_channel(bucket, "rec", frag_duration=2, frag_count=3)
    start_s = int(time.time()) - 1
    r = publishers.run(
        publishers.ffmpeg_copy(sample_flv, service.signed_publish_url("rec")), timeout_s=14 + 30
    )
    assert r.returncode == 0, r.stderr
    service.wait_idle("rec")
    end_s = int(time.time()) + 1
    segments = service.call(service.store.segments_between(BUCKET, "rec", 0, 2**62))
    body = bucket.get_vod_playlist("rec", start_s, end_s).playlist
    assert body.rstrip().endswith("#EXT-X-ENDLIST")
    assert body.count("#EXTINF") == len(segments)
    # What a client does with GetVodPlaylist's body: save it next to the segments (fetched
    # with oss2), then play the directory with ffmpeg.
    saved = tmp_path / "saved" / "rec"
    saved.mkdir(parents=True)
    (saved / "vod.m3u8").write_text(body)
    for segment in segments:
        bucket.get_object_to_file(segment.key, str(saved / segment.key.split("/")[1]))
    played = subprocess.run(
        ["ffmpeg", "-v", "error", "-nostdin", "-i", str(saved / "vod.m3u8"), "-c", "copy",
         "-f", "null", "-"], capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert played.returncode == 0 and not played.stderr, played.stderr
    bucket.post_vod_playlist("rec", "vod.m3u8", start_s, end_s)
    stored = bucket.get_object("rec/vod.m3u8").read().decode()
    assert stored.count("#EXTINF") == len(segments)
    # The stored playlist plays from where it is stored.
    local = tmp_path / "vod.ts"
    url = bucket.sign_url("GET", "rec/vod.m3u8", 300, params={"x-oss-process": "hls/sign"})
    p = subprocess.run(
        ["ffmpeg", "-v", "error", "-nostdin", "-i", url, "-c", "copy", "-y", str(local)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode == 0, p.stderr
    # Recordings fetched with the SDK
    first = segments[0].key
    bucket.get_object_to_file(first, str(tmp_path / "first.ts"))
    assert (tmp_path / "first.ts").read_bytes() == service.object_path(first).read_bytes()
