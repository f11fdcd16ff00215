"""An encoder matrix, each pushed by a real client (ffmpeg -c copy of a PyAV-made FLV,
unpaced), its output checked by the RFC 8216 validator, a full PyAV decode of every segment
(zero errors, A/V start within 100 ms) and ffmpeg playing the whole playlist."""

from __future__ import annotations

import math
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import m3u8
import pytest

from livechannel.store.base import Segment
from samples.make_sample import SampleSpec, make_sample
from tests.e2e.conftest import create_channel
from tests.hls_validator import assert_segments_exist, validate_media_playlist
from tests.support import publishers
from tests.support.hls import SegmentProbe, ffmpeg_decode_errors, probe_segment
from tests.support.rtmp_publisher import read_flv
from tests.support.service import BUCKET, ServiceThread

AV_SYNC_TOLERANCE_S = 0.1  # A/V start PTS within 100 ms in every segment
EXTINF_TOLERANCE_MS = 1  # EXTINF is rendered with millisecond precision
# FragCount's maximum (OSS API reference, PutLiveChannel): the playlist lists every segment.
LIST_ALL = 100
PUSH_TIMEOUT_S = 60.0  # unpaced pushes of a few MB take about a second
END_GRACE_S = 0.3  # the service writes ENDLIST this soon after a push (its default is 10 s)
ENDLIST_TIMEOUT_S = 10.0
SMALL = {"width": 320, "height": 180}  # fast to encode and decode where size does not matter


@dataclass(frozen=True)
class Output:
    """What a push left behind, checked against RFC 8216 and decoded."""

    playlist: m3u8.M3U8
    segments: list[Segment]
    probes: list[SegmentProbe]

    @property
    def video_frames(self) -> int:
        return sum(p.video_frames for p in self.probes)

    @property
    def audio_frames(self) -> int:
        return sum(p.audio_frames for p in self.probes)


def check_output(svc: ServiceThread, channel: str, playlist: str = "playlist.m3u8") -> Output:
    """The playlist is valid and names every indexed segment with its duration and tags;
    every segment decodes on its own without an error, starts with a keyframe, and its
    audio (if any) starts within 100 ms of its video."""
    svc.wait_idle(channel)
    parsed = validate_media_playlist(wait_endlist(svc, f"{channel}/{playlist}"))
    assert_segments_exist(parsed, lambda uri: svc.object_path(f"{channel}/{uri}").exists())
    segments = svc.call(svc.store.segments_between(BUCKET, channel, 0, 2**62))
    assert [s.uri for s in parsed.segments] == [s.key.rsplit("/", 1)[1] for s in segments]
    assert parsed.media_sequence == segments[0].seq
    probes = []
    for entry, seg in zip(parsed.segments, segments, strict=True):
        assert abs(entry.duration * 1000 - seg.duration_ms) <= EXTINF_TOLERANCE_MS, seg
        assert entry.discontinuity == seg.discontinuity, seg
        probe = probe_segment(svc.object_path(seg.key))
        assert probe.decode_errors == [], (seg.key, probe.decode_errors)
        assert probe.video_frames > 0 and probe.starts_with_keyframe, (seg.key, probe)
        if probe.audio_frames:
            assert probe.video_start_s is not None and probe.audio_start_s is not None
            assert abs(probe.video_start_s - probe.audio_start_s) <= AV_SYNC_TOLERANCE_S, (
                seg.key,
                probe.video_start_s,
                probe.audio_start_s,
            )
        probes.append(probe)
    return Output(parsed, segments, probes)


def wait_endlist(svc: ServiceThread, key: str) -> str:
    """The playlist once the end-of-stream grace has passed. Players are pointed at it only
    then: at the live edge ffmpeg waits TARGETDURATION/2 for an unchanged playlist (RFC 8216
    6.3.4), which would make each case take 30 s."""
    deadline = time.monotonic() + ENDLIST_TIMEOUT_S
    while not (text := svc.object_path(key).read_text()).rstrip().endswith("#EXT-X-ENDLIST"):
        assert time.monotonic() < deadline, f"{key}: no ENDLIST after the grace period\n{text}"
        time.sleep(0.05)
    return text


def assert_plays(svc: ServiceThread, channel: str, playlist: str = "playlist.m3u8") -> None:
    """ffmpeg's HLS demuxer plays the playlist through, as a player would: no error output.

    ffmpeg ignores EXT-X-DISCONTINUITY (it guesses clock jumps from the timestamps, roughly
    enough that its own muxer then complains), so a playlist with discontinuities is played
    as the runs between them, each from a playlist of its own: what a player that resets at
    the tag (RFC 8216 6.3.3) sees."""
    path = svc.object_path(f"{channel}/{playlist}")
    parsed = m3u8.loads(path.read_text())
    runs: list[list[m3u8.Segment]] = []
    for segment in parsed.segments:
        if not runs or segment.discontinuity:
            runs.append([])
        runs[-1].append(segment)
    if len(runs) == 1:
        errors = ffmpeg_decode_errors(path)
        assert errors == "", errors
        return
    with tempfile.TemporaryDirectory() as tmp:
        for number, run in enumerate(runs):
            lines = [
                "#EXTM3U",
                "#EXT-X-VERSION:3",
                f"#EXT-X-TARGETDURATION:{parsed.target_duration}",
            ]
            for segment in run:
                lines += [f"#EXTINF:{segment.duration:.3f},", str(path.parent / segment.uri)]
            part = Path(tmp) / f"run{number}.m3u8"
            part.write_text("\n".join([*lines, "#EXT-X-ENDLIST", ""]))
            errors = ffmpeg_decode_errors(part)
            assert errors == "", (number, errors)


def flv_counts(flv: Path) -> tuple[int, int]:
    """(video frames, audio frames) of an FLV that a push must keep: AVC NALU and AAC raw tags
    (packet type 1), not sequence headers or the end-of-sequence tag; audio only from the
    first video frame on (segments start with a keyframe; audio before it has no segment)."""
    tags = [t for t in read_flv(flv) if t.type_id in (8, 9) and t.body[1] == 1]
    first_video = next(i for i, t in enumerate(tags) if t.type_id == 9)
    audio = sum(t.type_id == 8 for t in tags[first_video:])
    return sum(t.type_id == 9 for t in tags), audio


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
    out = check_output(svc, name)

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
    out = check_output(svc, "late")
    video, audio = flv_counts(flv)
    assert (out.video_frames, out.audio_frames) == (video, audio)
    with_audio = [p for p in out.probes if p.audio_frames]
    first = out.probes.index(with_audio[0])
    assert with_audio == out.probes[first:], "audio stops again after it started"
    assert out.probes[first].video_start_s is not None
    assert abs(out.probes[first].video_start_s - out.probes[0].video_start_s - 3) < 0.1
    assert_plays(svc, "late")
