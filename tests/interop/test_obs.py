"""OBS Studio 29 (OBS's librtmp fork) streams to us headless, with the settings users have:
Simple output mode, x264, and OBS's default keyframe interval for a Custom server (250 frames,
8.3 s at 30 fps), longer than FragDuration; the service must say so (rtmp-clients.md)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from tests.support.obs_studio import FPS, HEIGHT, WIDTH, stream_with_obs
from tests.support.output import Cuts, check_output
from tests.support.service import BUCKET, ServiceThread, create_channel

STREAM_S = 18  # two of OBS's default GOPs plus a tail: at least two full segments
OBS_DEFAULT_KEYINT_FRAMES = 250  # x264's default; OBS sets none for a Custom server
OBS_GOP_MS = OBS_DEFAULT_KEYINT_FRAMES * 1000 // FPS
FRAG_DURATION_S = 5


def test_obs_studio_streams_with_default_keyframe_interval(
    service: ServiceThread, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    create_channel(service.bucket(), "obs", frag_duration=FRAG_DURATION_S, frag_count=2)
    url = service.signed_publish_url("obs", rtmp_port=True)
    stream_with_obs(service, "obs", url, tmp_path / "obs", STREAM_S)
    check_output(
        service,
        "obs",
        window=2,
        cuts=Cuts(FRAG_DURATION_S, OBS_GOP_MS / 1000),
        min_segments=2,
        require_audio=True,
        ffmpeg_decode=True,
    )
    history = service.call(service.store.history(BUCKET, "obs", 10))
    assert len(history) == 1 and history[0].end_ms is not None, history
    stats = json.loads(history[0].stats_json)
    assert (stats["video"]["width"], stats["video"]["height"]) == (WIDTH, HEIGHT)
    assert stats["audio"]["codec"] == "AAC"
    assert abs(stats["health"]["keyframe_interval_ms"] - OBS_GOP_MS) <= 1000 // FPS
    segments = service.call(service.store.segments_between(BUCKET, "obs", 0, 2**62))
    for seg in segments[:-1]:  # cut at OBS's keyframes, not at FragDuration
        assert abs(seg.duration_ms - OBS_GOP_MS) <= 1000 // FPS, seg
    warned = [
        r
        for r in caplog.records
        if r.levelno == logging.WARNING and r.name == "livechannel.pipeline"
    ]
    assert len(warned) == 1, [r.getMessage() for r in caplog.records]
