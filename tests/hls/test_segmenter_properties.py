"""Hypothesis: whatever a publisher sends, the segmenter never raises and its output holds."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from livechannel.hls.playlist import forced_cut_bound_s, rounded_s
from livechannel.hls.segmenter import Segmenter
from livechannel.hls.segments import CutReason, SegmentReady
from livechannel.media.demux import EndOfStream, MediaEvent, UnsupportedAudio, UnsupportedVideo
from livechannel.media.frames import AudioConfig, AudioFrame, VideoConfig, VideoFrame
from livechannel.media.mpegts import TS_PACKET_BYTES, TsMuxer
from tests.hls.recording_muxer import MuxLog

VIDEO_CONFIGS = (
    VideoConfig("H264", 640, 360, 4, (b"\x67a",), (b"\x68a",)),
    VideoConfig("H264", 1280, 720, 4, (b"\x67b",), (b"\x68b",)),
)
AUDIO_CONFIGS = (AudioConfig("AAC", 2, 44_100, 2, 4), AudioConfig("AAC", 2, 48_000, 1, 3))
# DTS steps: regular frames mostly, plus duplicates, jitter, stalls and clock jumps.
DTS_STEPS_MS = st.one_of(
    st.integers(1, 100),
    st.sampled_from([0, -1, -30, -999, -1_000, -5_000, -40_000, 2_000, 9_999, 10_100, 90_000]),
)
# Composition offsets: B-frames (positive), and broken negatives.
CTS_MS = st.one_of(st.just(0), st.integers(-100, 500))

step = st.one_of(
    st.tuples(st.just("v"), DTS_STEPS_MS, st.booleans(), st.integers(0, 3_000), CTS_MS),
    st.tuples(st.just("v"), DTS_STEPS_MS, st.just(False), st.integers(0, 300), CTS_MS),
    st.tuples(st.just("a"), st.integers(-12_000, 12_000), st.integers(0, 400)),
    st.tuples(st.just("a"), st.integers(-30, 60), st.integers(0, 400)),
    st.tuples(st.just("vc"), st.integers(0, 1)),
    st.tuples(st.just("ac"), st.integers(0, 1)),
    st.tuples(st.sampled_from(["eos", "uv", "ua"])),
)


def build(steps: list[tuple[object, ...]], start_ms: int) -> list[MediaEvent]:
    events: list[MediaEvent] = []
    t = start_ms
    for s in steps:
        kind = s[0]
        if kind == "v":
            _, delta, key, size, cts = s
            t += delta  # type: ignore[operator]
            events.append(VideoFrame(t, t + cts, bool(key), b"\x00\x00\x00\x01" + bytes(size)))  # type: ignore[operator, arg-type]
        elif kind == "a":
            _, offset, size = s
            events.append(AudioFrame(t + offset, b"\xff\xf1" + bytes(size)))  # type: ignore[operator, arg-type]
        elif kind == "vc":
            events.append(VIDEO_CONFIGS[s[1]])  # type: ignore[index]
        elif kind == "ac":
            events.append(AUDIO_CONFIGS[s[1]])  # type: ignore[index]
        elif kind == "eos":
            events.append(EndOfStream())
        elif kind == "uv":
            events.append(UnsupportedVideo("HEVC"))
        else:
            events.append(UnsupportedAudio("MP3"))
    return events


segmenter_settings = st.fixed_dictionaries(
    {
        "frag_duration_ms": st.sampled_from([1_000, 2_000, 5_000]),
        "max_segment_ms": st.sampled_from([None, 1_500, 3_000, 60_000]),
        "max_segment_bytes": st.sampled_from([600, 5_000, 64 * 1024 * 1024]),
    }
)


def check(out: list[SegmentReady], log: MuxLog, seg: Segmenter, events: list[MediaEvent]) -> None:
    target = forced_cut_bound_s(seg.max_segment_ms)
    written_video = written_audio = 0
    previous: SegmentReady | None = None
    previous_muxer = None
    for ready in out:
        items = log.frames_of(ready.data)
        kind, muxer_number = items[0]
        assert kind == "S", "every segment starts with PAT/PMT"
        muxer = log.muxers[muxer_number]  # type: ignore[index]
        video = [f for k, f in items if k == "V"]
        audio = [f for k, f in items if k == "A"]
        assert all(k != "S" for k, _ in items[1:])
        assert video, "every segment carries video"
        assert video[0].dts_ms == ready.first_dts_ms  # type: ignore[attr-defined]
        dts = [f.dts_ms for f in video]  # type: ignore[attr-defined]
        assert dts == sorted(set(dts)), f"video DTS not strictly increasing: {dts}"
        pts = [f.pts_ms for f in audio]  # type: ignore[attr-defined]
        assert pts == sorted(set(pts)), f"audio PTS not strictly increasing: {pts}"
        assert not audio or muxer[1], "audio written to a muxer without an audio track"
        unforced = previous is None or previous.reason not in (CutReason.FORCED, CutReason.SIZE)
        if unforced:
            assert video[0].keyframe, f"segment after {previous} starts with a non-keyframe"  # type: ignore[attr-defined]
        if previous is not None and muxer != previous_muxer:
            assert ready.discontinuity, "the track set changed without a discontinuity"
        if (
            previous is not None
            and not ready.discontinuity
            and previous.reason is not CutReason.END
        ):
            # Same clock: the previous segment lasted exactly until this one began.
            assert ready.first_dts_ms - previous.first_dts_ms == previous.duration_ms
        assert ready.duration_ms >= 1
        assert rounded_s(ready.duration_ms) <= target, "EXTINF would exceed TARGETDURATION"
        written_video += len(video)
        written_audio += len(audio)
        previous, previous_muxer = ready, muxer
    # Every frame is written once or counted as dropped in the push's figures.
    video_in = sum(isinstance(e, VideoFrame) for e in events)
    audio_in = sum(isinstance(e, AudioFrame) for e in events)
    assert video_in == written_video + seg.stats.dropped_video
    assert audio_in == written_audio + seg.stats.dropped_audio
    assert seg.stats.discontinuities == sum(r.discontinuity for r in out)
    assert seg.stats.forced_cuts == sum(r.reason is CutReason.FORCED for r in out)


@settings(max_examples=300, deadline=None)
@given(
    steps=st.lists(step, max_size=120),
    start_ms=st.integers(0, 2**33),
    config=segmenter_settings,
    headers_first=st.booleans(),
)
def test_random_streams_keep_the_invariants(
    steps: list[tuple[object, ...]], start_ms: int, config: dict[str, int], headers_first: bool
) -> None:
    log = MuxLog()
    seg = Segmenter(muxer_factory=log.factory, **config)  # type: ignore[arg-type]
    events = build(steps, start_ms)
    if headers_first:
        events = [VIDEO_CONFIGS[0], AUDIO_CONFIGS[0], *events]
    out: list[SegmentReady] = []
    for now_ms, event in enumerate(events):
        out += seg.push(event, now_ms)
    out += seg.flush(len(events))
    check(out, log, seg, events)


@settings(max_examples=100, deadline=None)
@given(steps=st.lists(step, max_size=80), start_ms=st.integers(0, 2**40))
def test_random_streams_through_the_real_muxer(
    steps: list[tuple[object, ...]], start_ms: int
) -> None:
    seg = Segmenter(1_000, max_segment_ms=3_000, muxer_factory=TsMuxer)
    out: list[SegmentReady] = []
    for now_ms, event in enumerate([VIDEO_CONFIGS[0], AUDIO_CONFIGS[0], *build(steps, start_ms)]):
        out += seg.push(event, now_ms)
    out += seg.flush(0)
    for ready in out:
        assert len(ready.data) % TS_PACKET_BYTES == 0
        assert ready.data[0] == 0x47 and ready.data[TS_PACKET_BYTES] == 0x47  # PAT, PMT
