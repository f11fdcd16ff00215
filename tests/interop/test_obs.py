"""OBS Studio 29 (OBS's librtmp fork) streams to us headless, with the settings users have:
Simple output mode, x264, and OBS's default keyframe interval for a Custom server (250 frames,
8.3 s at 30 fps), longer than FragDuration; the service must say so (rtmp-clients.md)."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import pytest

from tests.interop.obs_studio import FPS, HEIGHT, WIDTH, HeadlessObs
from tests.support.output import Cuts, check_output
from tests.support.service import BUCKET, ServiceThread, create_channel

CONNECT_TIMEOUT_S = 30.0  # OBS under Xvfb with software GL starts streaming in 1-3 s
STREAM_S = 18  # two of OBS's default GOPs plus a tail: at least two full segments
OBS_DEFAULT_KEYINT_FRAMES = 250  # x264's default; OBS sets none for a Custom server
OBS_GOP_MS = OBS_DEFAULT_KEYINT_FRAMES * 1000 // FPS
FRAG_DURATION_S = 5


def test_obs_studio_streams_with_default_keyframe_interval(
    service: ServiceThread, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    create_channel(service.bucket(), "obs", frag_duration=FRAG_DURATION_S, frag_count=2)
    # OBS's "Server" field takes the URL up to the app, "Stream Key" the rest: as users paste it.
    server, _, key = service.signed_publish_url("obs", rtmp_port=True).rpartition("/")
    obs = HeadlessObs(tmp_path / "obs", server, key).start()
    try:
        deadline = time.monotonic() + CONNECT_TIMEOUT_S
        while service.call(service.store.live_push(BUCKET, "obs")) is None:
            assert obs.running(), obs.log()[-3000:]
            assert time.monotonic() < deadline, obs.log()[-3000:]
            time.sleep(0.2)
        time.sleep(STREAM_S)
        assert obs.running(), obs.log()[-3000:]
    finally:
        obs.stop()

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
