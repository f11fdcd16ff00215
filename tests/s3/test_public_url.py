"""A bucket's `public_base_url` (a CDN, or the store's own public URL) is where
PlayUrls and VOD playlists send players. On S3 that URL is moto's own, so a real player
(ffmpeg) plays the live and the VOD playlist straight from the store, not through us."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import oss2
import pytest

from livechannel.store.base import Segment
from tests.support import publishers
from tests.support.moto import MotoServer
from tests.support.service import BUCKET, ServiceThread

CDN = "https://cdn.example.com/live"
PLAYER_TIMEOUT_S = 60


def media_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def play_all(url: str) -> subprocess.CompletedProcess[str]:
    # -enc_time_base: see tests/support/hls.py (the null muxer rounds timestamps otherwise)
    cmd = ["ffmpeg", "-hide_banner", "-v", "error", "-nostdin", "-i", url,
           "-enc_time_base", "1/90000", "-f", "null", "-"]  # fmt: skip
    return subprocess.run(cmd, capture_output=True, text=True, timeout=PLAYER_TIMEOUT_S)


def test_play_urls_and_vod_playlists_use_the_public_base_url(tmp_path: Path) -> None:
    svc = ServiceThread(tmp_path / "data", storage={"public_base_url": CDN + "/"}).start()
    try:
        bucket = svc.bucket()
        target = oss2.models.LiveChannelInfoTarget(playlist_name="index.m3u8")
        created = bucket.create_live_channel("cam", oss2.models.LiveChannelInfo(target=target))
        assert created.play_url == f"{CDN}/cam/index.m3u8"
        assert bucket.get_live_channel("cam").target.playlist_name == "index.m3u8"
        listed = next(iter(oss2.LiveChannelIterator(bucket)))
        assert listed.play_url == f"{CDN}/cam/index.m3u8"
        now_ms = time.time_ns() // 1_000_000
        for seq in range(3):
            svc.call(svc.store.add_segment(Segment(
                BUCKET, "cam", seq, f"cam/{now_ms + seq * 2000}.ts", now_ms + seq * 2000,
                2000, 100, 1, seq == 0)))  # fmt: skip
        start_s, end_s = now_ms // 1000 - 1, now_ms // 1000 + 10
        expected = [f"{CDN}/cam/{now_ms + seq * 2000}.ts" for seq in range(3)]
        got = bucket.get_vod_playlist("cam", start_s, end_s).playlist
        assert media_lines(got) == expected
        bucket.post_vod_playlist("cam", "vod.m3u8", start_s, end_s)
        stored = bucket.get_object("cam/vod.m3u8").read().decode()
        assert media_lines(stored) == expected
    finally:
        svc.stop()


def test_player_reads_straight_from_s3_public_url(
    tmp_path: Path, moto: MotoServer, sample_flv: Path
) -> None:
    s3_bucket = moto.new_bucket(public=True)
    public = f"{moto.endpoint}/{s3_bucket}"  # players read it anonymously, as from a CDN
    table = moto.storage_table(s3_bucket, public_base_url=public, addressing_style="path")
    svc = ServiceThread(tmp_path / "data", storage=table, end_grace_s=0.5).start()
    try:
        bucket = svc.bucket()
        target = oss2.models.LiveChannelInfoTarget(frag_duration=2, frag_count=3)
        created = bucket.create_live_channel("cam", oss2.models.LiveChannelInfo(target=target))
        assert created.play_url == f"{public}/cam/playlist.m3u8"
        start_s = int(time.time()) - 1
        url = svc.signed_publish_url("cam", rtmp_port=True)
        r = publishers.run(publishers.ffmpeg_copy(sample_flv, url, realtime=False), timeout_s=60)
        assert r.returncode == 0, r.stderr
        svc.wait_idle("cam")
        deadline = time.monotonic() + 15  # then the end grace passes and ENDLIST is written
        while "#EXT-X-ENDLIST" not in bucket.get_object("cam/playlist.m3u8").read().decode():
            assert time.monotonic() < deadline, "the live playlist never ended"
            time.sleep(0.2)
        live = play_all(created.play_url)  # relative segment URIs resolve on the store
        assert live.returncode == 0 and live.stderr.strip() == "", live.stderr

        bucket.post_vod_playlist("cam", "vod.m3u8", start_s, int(time.time()) + 1)
        vod = play_all(f"{public}/cam/vod.m3u8")
        assert vod.returncode == 0 and vod.stderr.strip() == "", vod.stderr
        segments = svc.call(svc.store.segments_between(BUCKET, "cam", 0, 2**62))
        text = bucket.get_object("cam/vod.m3u8").read().decode()
        assert media_lines(text) == [f"{public}/{s.key}" for s in segments]
    finally:
        svc.stop()


@pytest.fixture(scope="session")
def sample_flv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from samples.make_sample import SampleSpec, make_sample

    path = tmp_path_factory.mktemp("samples") / "short.flv"
    return make_sample(path, SampleSpec(duration_s=8, width=320, height=180))
