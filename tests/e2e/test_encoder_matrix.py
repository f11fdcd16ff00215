"""An encoder matrix, each pushed by a real client (ffmpeg -c copy of a PyAV-made FLV,
unpaced), its output checked by the RFC 8216 validator, a full PyAV decode of every segment
(zero errors, A/V start within 100 ms) and ffmpeg playing the whole playlist."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from samples.make_sample import SampleSpec, make_sample
from tests.support import publishers
from tests.support.output import END_GRACE_S, LIST_ALL, assert_plays, check_output, flv_counts
from tests.support.rtmp_publisher import read_flv
from tests.support.service import ServiceThread, create_channel

PUSH_TIMEOUT_S = 60.0  # unpaced pushes of a few MB take about a second
SMALL = {"width": 320, "height": 180}  # fast to encode and decode where size does not matter


@pytest.fixture(scope="module")
def svc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceThread]:
    data = tmp_path_factory.mktemp("matrix") / "data"
    with ServiceThread(data, end_grace_s=END_GRACE_S).start() as service:
        yield service


@dataclass(frozen=True)
class Case:
    spec: SampleSpec
    frag_duration_s: int


MATRIX = {
    "x264-bframes": Case(SampleSpec(duration_s=7, gop_s=1, bframes=2, **SMALL), 2),
    "x264-no-bframes": Case(SampleSpec(duration_s=7, gop_s=1, bframes=0, **SMALL), 2),
    "gop1s-fd5": Case(SampleSpec(duration_s=16, gop_s=1, **SMALL), 5),
    "gop2s-fd5": Case(SampleSpec(duration_s=19, gop_s=2, **SMALL), 5),
    "gop10s-fd5": Case(SampleSpec(duration_s=32, gop_s=10, **SMALL), 5),
    "60fps": Case(SampleSpec(duration_s=6, fps=60, gop_s=1, **SMALL), 2),
    "1080p": Case(SampleSpec(duration_s=4, width=1920, height=1080, gop_s=1), 1),
    "aac-44k-stereo": Case(SampleSpec(duration_s=5, sample_rate=44_100, channels=2, **SMALL), 2),
    "aac-48k-mono": Case(SampleSpec(duration_s=5, sample_rate=48_000, channels=1, **SMALL), 2),
    "video-only": Case(SampleSpec(duration_s=5, audio=False, **SMALL), 2),
}


@pytest.mark.parametrize("name", list(MATRIX))
def test_encoder_matrix(svc: ServiceThread, sample_dir: Path, name: str) -> None:
    case = MATRIX[name]
    spec = case.spec
    flv = make_sample(sample_dir / f"matrix-{name}.flv", spec)
    create_channel(svc.bucket(), name, frag_duration=case.frag_duration_s, frag_count=LIST_ALL)
    r = publishers.run(
        publishers.ffmpeg_copy(flv, svc.signed_publish_url(name), realtime=False),
        timeout_s=PUSH_TIMEOUT_S,
    )
    assert r.returncode == 0, r.stderr
    # The sample is what the case claims: B-frames show as non-zero composition offsets.
    offsets = [
        int.from_bytes(t.body[2:5], "big", signed=True)
        for t in read_flv(flv)
        if t.type_id == 9 and t.body[1] == 1
    ]
    assert any(offsets) == (spec.bframes > 0)
    out = check_output(svc, name, ended=True)

    # Cut at the first keyframe once FragDuration is reached: ceil(FD / GOP) GOPs per segment.
    gop_ms = round(spec.gop_s * 1000)
    expected_ms = math.ceil(case.frag_duration_s * 1000 / gop_ms) * gop_ms
    frame_ms = 1000 / spec.fps
    for seg in out.segments[:-1]:  # the last one ends with the push
        assert abs(seg.duration_ms - expected_ms) <= frame_ms, (seg.key, seg.duration_ms)
    assert not any(s.discontinuity for s in out.segments)
    assert sum(s.duration_ms for s in out.segments) == pytest.approx(
        spec.duration_s * 1000, abs=2 * frame_ms
    )
    # Nothing lost: every frame of the file is decoded from exactly one segment.
    video, audio = flv_counts(flv)
    assert out.video_frames == video
    assert out.audio_frames == audio
    for probe in out.probes:
        assert (probe.width, probe.height) == (spec.width, spec.height)
        if spec.audio:
            assert probe.audio_frames > 0 and probe.sample_rate == spec.sample_rate
    assert_plays(svc, name)


def test_audio_starting_3s_after_video_is_kept(svc: ServiceThread, sample_dir: Path) -> None:
    """ffmpeg sends the AAC sequence header at once and the first audio frame 3 s later: the
    segments before carry no audio, and from 3 s on no audio frame is lost."""
    spec = SampleSpec(duration_s=8, gop_s=1, audio_delay_s=3, **SMALL)
    flv = make_sample(sample_dir / "matrix-audio-late.flv", spec)
    create_channel(svc.bucket(), "late", frag_duration=1, frag_count=LIST_ALL)
    r = publishers.run(
        publishers.ffmpeg_copy(flv, svc.signed_publish_url("late"), realtime=False),
        timeout_s=PUSH_TIMEOUT_S,
    )
    assert r.returncode == 0, r.stderr
    out = check_output(svc, "late", ended=True)
    video, audio = flv_counts(flv)
    assert (out.video_frames, out.audio_frames) == (video, audio)
    with_audio = [p for p in out.probes if p.audio_frames]
    first = out.probes.index(with_audio[0])
    assert with_audio == out.probes[first:], "audio stops again after it started"
    assert out.probes[first].video_start_s is not None
    assert abs(out.probes[first].video_start_s - out.probes[0].video_start_s - 3) < 0.1
    assert_plays(svc, "late")
