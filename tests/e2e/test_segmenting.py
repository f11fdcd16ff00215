"""The forced cut when keyframes never come back."""

from __future__ import annotations

from pathlib import Path

from samples.make_sample import SampleSpec, make_sample
from tests.support import publishers
from tests.support.hls import probe_segment
from tests.support.service import BUCKET, ServiceThread, create_channel

FORCED_CUT_MS = 60_000  # OSS API reference, PutLiveChannel: max(2 x FragDuration, 60 s)


def test_single_keyframe_stream_is_cut_at_60s(service: ServiceThread, sample_dir: Path) -> None:
    flv = make_sample(
        sample_dir / "one-idr.flv",
        SampleSpec(
            duration_s=75, width=320, height=180, fps=15, only_first_keyframe=True, bframes=0
        ),
    )
    create_channel(service.bucket(), "nokeys", frag_duration=1, frag_count=3)
    url = service.signed_publish_url("nokeys", rtmp_port=True)
    r = publishers.run(publishers.ffmpeg_copy(flv, url, realtime=False), timeout_s=60)
    assert r.returncode == 0, r.stderr
    service.wait_idle("nokeys")
    segments = service.call(service.store.segments_between(BUCKET, "nokeys", 0, 2**62))
    assert len(segments) == 2, [(s.key, s.duration_ms) for s in segments]
    first, rest = segments
    assert abs(first.duration_ms - FORCED_CUT_MS) <= 100, first.duration_ms
    assert probe_segment(service.object_path(first.key)).starts_with_keyframe
    assert 14_000 <= rest.duration_ms <= 16_000
