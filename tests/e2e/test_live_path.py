"""End to end: real publishers → our RTMP listener → HLS in storage → real decoders."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import publishers
from tests.support.output import Cuts, check_output
from tests.support.service import BUCKET, ServiceThread, create_channel


def test_ffmpeg_cli_pushes_30s_to_oss2_signed_url(service: ServiceThread) -> None:
    bucket = service.bucket()
    create_channel(bucket, "cam1", frag_duration=5, frag_count=3)
    url = service.signed_publish_url("cam1")  # exactly oss2's URL, HTTP port and all
    r = publishers.run(
        publishers.ffmpeg_live(url, duration_s=30, gop_s=2, bframes=2),
        timeout_s=30 + publishers.PUBLISH_TIMEOUT_MARGIN_S,
    )
    assert r.returncode == 0, r.stderr
    check_output(
        service,
        "cam1",
        window=3,
        cuts=Cuts(5, 2),
        min_segments=5,
        require_audio=True,
        ffmpeg_decode=True,
    )
    history = service.call(service.store.history(BUCKET, "cam1", 10))
    assert len(history) == 1 and history[0].end_ms is not None
    assert history[0].remote_addr.startswith("127.0.0.1:")


def test_pyav_publisher(any_service: ServiceThread, sample_flv: Path) -> None:
    service = any_service  # local filesystem and S3 (docs/storage.md)
    create_channel(service.bucket(), "pyav", frag_duration=2, frag_count=3)
    url = service.signed_publish_url("pyav", rtmp_port=True)
    r = publishers.run(publishers.pyav(sample_flv, url), timeout_s=14 + 30)
    assert r.returncode == 0, r.stderr
    check_output(
        service,
        "pyav",
        window=3,
        cuts=Cuts(2, 2),
        min_segments=5,
        require_audio=True,
        ffmpeg_decode=True,
    )


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
    check_output(
        service,
        channel,
        window=3,
        cuts=Cuts(2, 2),
        min_segments=5,
        require_audio=True,
        ffmpeg_decode=True,
    )


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
        window=2,
        cuts=Cuts(2, 2),
        min_segments=4,
        require_audio=True,
        playlist="other.m3u8",
        ffmpeg_decode=True,
    )
