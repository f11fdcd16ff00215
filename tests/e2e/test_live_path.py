"""End to end: real publishers → our RTMP listener → HLS in storage → real decoders."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.conftest import create_channel
from tests.hls_validator import validate_media_playlist
from tests.support import publishers
from tests.support.hls import ffmpeg_decode_errors, probe_segment
from tests.support.service import BUCKET, ServiceThread

AV_SYNC_TOLERANCE_S = 0.1  # A/V start PTS within 100 ms in every segment
CUT_TOLERANCE_MS = 150  # one frame at 30 fps plus AAC frame granularity


def all_segments(service: ServiceThread, channel: str):  # type: ignore[no-untyped-def]
    return service.call(service.store.segments_between(BUCKET, channel, 0, 2**62))


def check_output(
    service: ServiceThread,
    channel: str,
    *,
    frag_duration_s: int,
    frag_count: int,
    gop_s: float,
    min_segments: int,
    audio: bool = True,
    playlist: str = "playlist.m3u8",
) -> None:
    service.wait_idle(channel)
    text = service.object_path(f"{channel}/{playlist}").read_text()
    pl = validate_media_playlist(text)
    assert len(pl.segments) == frag_count, text
    segments = all_segments(service, channel)
    assert len(segments) >= min_segments, [s.key for s in segments]
    listed = [s.uri for s in pl.segments]
    assert listed == [s.key.rsplit("/", 1)[1] for s in segments[-frag_count:]]
    for seg in segments[:-1]:  # the last one was flushed at the end of the push
        assert frag_duration_s * 1000 - CUT_TOLERANCE_MS <= seg.duration_ms, seg
        assert seg.duration_ms <= (frag_duration_s + gop_s) * 1000 + CUT_TOLERANCE_MS, seg
    for seg in segments:
        path = service.object_path(seg.key)
        assert path.stat().st_size == seg.size
        probe = probe_segment(path)
        assert probe.decode_errors == [], (seg.key, probe.decode_errors)
        assert probe.starts_with_keyframe, seg.key
        assert probe.video_frames > 0
        if audio:
            assert probe.audio_frames > 0, seg.key
            assert probe.video_start_s is not None and probe.audio_start_s is not None
            assert abs(probe.video_start_s - probe.audio_start_s) <= AV_SYNC_TOLERANCE_S, (
                seg.key,
                probe.video_start_s,
                probe.audio_start_s,
            )
        assert ffmpeg_decode_errors(path) == "", seg.key


def test_ffmpeg_cli_pushes_30s_to_oss2_signed_url(service: ServiceThread) -> None:
    bucket = service.bucket()
    create_channel(bucket, "cam1", frag_duration=5, frag_count=3)
    url = service.signed_publish_url("cam1")  # exactly oss2's URL, HTTP port and all
    r = publishers.run(
        publishers.ffmpeg_live(url, duration_s=30, gop_s=2, bframes=2),
        timeout_s=30 + publishers.PUBLISH_TIMEOUT_MARGIN_S,
    )
    assert r.returncode == 0, r.stderr
    check_output(service, "cam1", frag_duration_s=5, frag_count=3, gop_s=2, min_segments=5)
    history = service.call(service.store.history(BUCKET, "cam1", 10))
    assert len(history) == 1 and history[0].end_ms is not None
    assert history[0].remote_addr.startswith("127.0.0.1:")


def test_pyav_publisher(any_service: ServiceThread, sample_flv: Path) -> None:
    service = any_service  # local filesystem and S3 (docs/storage.md)
    create_channel(service.bucket(), "pyav", frag_duration=2, frag_count=3)
    url = service.signed_publish_url("pyav", rtmp_port=True)
    r = publishers.run(publishers.pyav(sample_flv, url), timeout_s=14 + 30)
    assert r.returncode == 0, r.stderr
    check_output(service, "pyav", frag_duration_s=2, frag_count=3, gop_s=2, min_segments=5)


@pytest.mark.parametrize("sink", ["rtmp2sink", "rtmpsink"])
def test_gstreamer_publishers(service: ServiceThread, sink: str) -> None:
    channel = f"gst-{sink}"
    create_channel(service.bucket(), channel, frag_duration=2, frag_count=3)
    url = service.signed_publish_url(channel, rtmp_port=True)
    r = publishers.run(
        publishers.gst_live(url, sink=sink, duration_s=12),
        timeout_s=12 + publishers.PUBLISH_TIMEOUT_MARGIN_S,
    )
    assert r.returncode == 0, r.stderr
    check_output(service, channel, frag_duration_s=2, frag_count=3, gop_s=2, min_segments=5)


def test_playlist_name_parameter_writes_other_playlist(
    service: ServiceThread, sample_flv: Path
) -> None:
    create_channel(service.bucket(), "alt", frag_duration=2, frag_count=2)
    url = service.signed_publish_url("alt", playlist="other.m3u8", rtmp_port=True)
    r = publishers.run(publishers.ffmpeg_copy(sample_flv, url), timeout_s=14 + 30)
    assert r.returncode == 0, r.stderr
    assert service.object_path("alt/other.m3u8").exists()
    assert not service.object_path("alt/playlist.m3u8").exists()
    check_output(
        service,
        "alt",
        frag_duration_s=2,
        frag_count=2,
        gop_s=2,
        min_segments=4,
        playlist="other.m3u8",
    )
