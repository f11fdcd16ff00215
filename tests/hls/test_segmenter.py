"""Segmenter cut logic on synthetic streams, seen through a muxer that records every call."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import pytest

from livechannel.hls.playlist import forced_cut_bound_s, rounded_s
from livechannel.hls.segmenter import MAX_DTS_GAP_MS, Segmenter, default_max_segment_ms
from livechannel.hls.segments import CutReason, SegmentReady
from livechannel.media.demux import EndOfStream, MediaEvent, UnsupportedAudio, UnsupportedVideo
from livechannel.media.frames import AudioConfig, AudioFrame, VideoConfig, VideoFrame
from tests.hls.recording_muxer import MuxLog

VC = VideoConfig("H264", 640, 360, 4, (b"\x67sps",), (b"\x68pps",))
VC_720P = VideoConfig("H264", 1280, 720, 4, (b"\x67sps720",), (b"\x68pps720",))
AC = AudioConfig("AAC", 2, 44_100, 2, 4)
AC_48K = AudioConfig("AAC", 2, 48_000, 2, 3)
FRAME_MS = 40  # 25 fps
WALL_CLOCK_OFFSET_MS = 1_700_000_000_000  # now_ms in these tests: publisher time + this


def v(dts_ms: int, key: bool = False, size: int = 8) -> VideoFrame:
    return VideoFrame(dts_ms, dts_ms, key, b"\x00\x00\x00\x01" + bytes(size))


def a(pts_ms: int) -> AudioFrame:
    return AudioFrame(pts_ms, b"\xff\xf1" + bytes(6))


def av_stream(
    start_ms: int,
    end_ms: int,
    gop_ms: int | None,
    *,
    audio: bool = True,
    first_key: bool = True,
) -> list[MediaEvent]:
    """Video every 40 ms (keyframe every `gop_ms`; None: only the first), AAC every ~23 ms,
    interleaved by time with video first on ties, as ffmpeg's FLV muxer sends them."""
    timed: list[tuple[int, int, MediaEvent]] = []
    for t in range(start_ms, end_ms, FRAME_MS):
        since = t - start_ms
        key = (
            (since == 0 and first_key)
            if gop_ms is None
            else since % gop_ms == 0 and (since > 0 or first_key)
        )
        timed.append((t, 0, v(t, key)))
    if audio:
        k = 0
        while (t := start_ms + k * 1024 * 1000 // 44_100) < end_ms:
            timed.append((t, 1, a(t)))
            k += 1
    return [event for _, _, event in sorted(timed, key=lambda x: (x[0], x[1]))]


def feed(seg: Segmenter, events: Iterable[MediaEvent]) -> list[SegmentReady]:
    out: list[SegmentReady] = []
    for event in events:
        ts = getattr(event, "dts_ms", getattr(event, "pts_ms", 0))
        out += seg.push(event, WALL_CLOCK_OFFSET_MS + ts)
    return out


def run(
    events: Sequence[MediaEvent], frag_ms: int = 5_000, **kwargs: int
) -> tuple[list[SegmentReady], MuxLog, Segmenter]:
    log = MuxLog()
    seg = Segmenter(frag_ms, muxer_factory=log.factory, **kwargs)  # type: ignore[arg-type]
    out = feed(seg, events)
    out += seg.flush(WALL_CLOCK_OFFSET_MS + 10**9)
    return out, log, seg


def videos(log: MuxLog, ready: SegmentReady) -> list[VideoFrame]:
    return [f for kind, f in log.frames_of(ready.data) if kind == "V"]  # type: ignore[misc]


def audios(log: MuxLog, ready: SegmentReady) -> list[AudioFrame]:
    return [f for kind, f in log.frames_of(ready.data) if kind == "A"]  # type: ignore[misc]


def muxer_of(log: MuxLog, ready: SegmentReady) -> tuple[bool, bool, AudioConfig | None]:
    kind, number = log.frames_of(ready.data)[0]
    assert kind == "S", "a segment starts with PAT/PMT"
    return log.muxers[number]  # type: ignore[index]


# --- keyframe cuts (OSS API reference, PutLiveChannel) --------------------------------------


@pytest.mark.parametrize(
    ("gop_ms", "expected_starts_ms"),
    [
        (1_000, list(range(0, 60_000, 5_000))),  # FD reached exactly on a keyframe
        (2_000, list(range(0, 60_000, 6_000))),  # first keyframe after 5 s is at 6 s
        (10_000, list(range(0, 60_000, 10_000))),  # GOP longer than FD: one GOP per segment
    ],
)
def test_cuts_at_first_keyframe_after_frag_duration(
    gop_ms: int, expected_starts_ms: list[int]
) -> None:
    events = [VC, AC, *av_stream(0, 60_000, gop_ms)]
    out, log, seg = run(events)
    assert [r.first_dts_ms for r in out] == expected_starts_ms
    ends = [*expected_starts_ms[1:], 60_000]  # the last one: last DTS + one frame interval
    assert [r.duration_ms for r in out] == [
        e - s for s, e in zip(expected_starts_ms, ends, strict=True)
    ]
    assert [r.reason for r in out] == [CutReason.KEYFRAME] * (len(out) - 1) + [CutReason.END]
    assert not any(r.discontinuity for r in out)
    assert [r.arrival_ms for r in out] == [WALL_CLOCK_OFFSET_MS + s for s in expected_starts_ms]
    all_audio = []
    for ready, end in zip(out, ends, strict=True):
        frames = videos(log, ready)
        assert frames[0].keyframe and frames[0].dts_ms == ready.first_dts_ms
        assert [f.dts_ms for f in frames] == list(range(ready.first_dts_ms, end, FRAME_MS))
        # Audio lands in the segment whose time span it falls in.
        pts = [f.pts_ms for f in audios(log, ready)]
        assert pts and all(ready.first_dts_ms <= p < end for p in pts)
        all_audio += pts
        assert muxer_of(log, ready) == (True, True, AC)
    assert len(all_audio) == sum(isinstance(e, AudioFrame) for e in events)  # no audio lost
    assert len(log.muxers) == 1  # one transport stream: continuity counters run on
    assert (seg.stats.dropped_video, seg.stats.dropped_audio, seg.stats.forced_cuts) == (0, 0, 0)


def test_forced_cut_with_a_single_keyframe() -> None:
    out, log, seg = run([VC, AC, *av_stream(0, 150_000, None)], frag_ms=1_000)
    assert seg.max_segment_ms == 60_000
    assert [r.first_dts_ms for r in out] == [0, 60_000, 120_000]
    assert [r.duration_ms for r in out] == [60_000, 60_000, 30_000]
    assert [r.reason for r in out] == [CutReason.FORCED, CutReason.FORCED, CutReason.END]
    assert [videos(log, r)[0].keyframe for r in out] == [True, False, False]
    assert not any(r.discontinuity for r in out)  # same clock, same tracks
    target = forced_cut_bound_s(seg.max_segment_ms)
    assert target == 60
    assert all(rounded_s(r.duration_ms) <= target for r in out)
    assert seg.stats.forced_cuts == 2


@pytest.mark.parametrize(("frag_ms", "bound_ms"), [(5_000, 60_000), (40_000, 80_000)])
def test_forced_cut_bound_default(frag_ms: int, bound_ms: int) -> None:
    assert default_max_segment_ms(frag_ms) == bound_ms
    assert Segmenter(frag_ms).max_segment_ms == bound_ms
    assert Segmenter(frag_ms, max_segment_ms=12_000).max_segment_ms == 12_000


def test_operator_bound_below_frag_duration_forces_cuts() -> None:
    out, _, _ = run([VC, *av_stream(0, 30_000, 20_000, audio=False)], max_segment_ms=10_000)
    assert [(r.first_dts_ms, r.reason) for r in out] == [
        (0, CutReason.FORCED),
        (10_000, CutReason.KEYFRAME),  # the keyframe at 20 s is past FD of the 2nd segment
        (20_000, CutReason.END),
    ]


def test_stall_that_would_overrun_target_duration_becomes_a_discontinuity() -> None:
    """A 7 s network stall (below the jump threshold) at 59 s with no keyframe: the segment
    cannot last 66 s under TARGETDURATION 60, so its duration is estimated instead and the
    next segment says its timestamps do not follow on."""
    events = [VC, *av_stream(0, 59_000, None, audio=False), v(66_000), v(66_040)]
    out, _, _ = run(events, frag_ms=1_000)
    assert [(r.first_dts_ms, r.reason, r.discontinuity) for r in out] == [
        (0, CutReason.FORCED, False),
        (66_000, CutReason.END, True),
    ]
    assert out[0].duration_ms == 59_000
    assert rounded_s(out[0].duration_ms) <= 60


def test_stall_before_frag_duration_lengthens_the_segment() -> None:
    events = [VC, *av_stream(0, 3_000, 1_000, audio=False), *av_stream(8_000, 10_000, 1_000)]
    out, _, _ = run(events)
    assert [(r.first_dts_ms, r.duration_ms, r.discontinuity) for r in out[:2]] == [
        (0, 8_000, False),  # the stall is real time, part of the segment
        (8_000, 2_000, False),
    ]


# --- start of stream ---------------------------------------------------------------------


def test_nothing_before_the_first_keyframe() -> None:
    """nginx-rtmp relays join mid-stream: audio and P-frames come before the first IDR."""
    events = [VC, AC, a(0), v(0), a(23), v(40), *av_stream(2_000, 9_000, 2_000)]
    out, log, seg = run(events)
    assert out[0].first_dts_ms == 2_000
    assert videos(log, out[0])[0].keyframe
    assert min(f.pts_ms for f in audios(log, out[0])) >= 2_000
    assert seg.stats.dropped_video == 2 and seg.stats.dropped_audio == 2
    assert not out[0].discontinuity


def test_video_only() -> None:
    out, log, _ = run([VC, *av_stream(0, 12_000, 2_000, audio=False)])
    assert [r.first_dts_ms for r in out] == [0, 6_000]
    assert all(muxer_of(log, r) == (True, False, None) for r in out)
    assert all(not audios(log, r) for r in out)


def test_no_video_config_yet_still_segments_on_keyframes() -> None:
    out, _, _ = run(av_stream(0, 12_000, 2_000, audio=False))
    assert [r.first_dts_ms for r in out] == [0, 6_000]


def test_unsupported_tracks_are_ignored() -> None:
    events = [VC, UnsupportedAudio("MP3"), UnsupportedVideo("HEVC"), v(0, True), v(40)]
    out, _, _ = run(events)
    assert len(out) == 1 and out[0].reason is CutReason.END


# --- timestamps ----------------------------------------------------------------------------


def test_forward_jump_cuts_with_discontinuity_then_waits_for_a_keyframe() -> None:
    """The clock leaps 93 s mid-GOP: cut at once; the next segment, flagged, starts at the
    next keyframe (it must decode on its own: players reset at a discontinuity)."""
    events = [
        VC,
        AC,
        *av_stream(0, 7_000, 1_000),
        *av_stream(100_020, 108_000, 1_000, first_key=False),
    ]
    out, log, seg = run(events)
    summary = [(r.first_dts_ms, r.reason, r.discontinuity) for r in out]
    assert summary == [
        (0, CutReason.KEYFRAME, False),
        (5_000, CutReason.DISCONTINUITY, False),
        (101_020, CutReason.KEYFRAME, True),
        (106_020, CutReason.END, False),
    ]
    assert out[1].duration_ms == 2_000  # estimated: the 93 s gap is not part of it
    assert videos(log, out[2])[0].keyframe
    assert seg.stats.dropped_video == 1_000 // FRAME_MS  # the rest of the broken GOP
    # Audio of the new clock went to the new segment, none of it before its video.
    assert min(f.pts_ms for f in audios(log, out[2])) >= 101_020


def test_backward_jump_cuts_with_discontinuity() -> None:
    """A restarted encoder clock: DTS drops from 30 s to 0."""
    events = [VC, AC, *av_stream(0, 30_000, 2_000), *av_stream(0, 10_000, 2_000)]
    out, log, _ = run(events)
    summary = [(r.first_dts_ms, r.reason, r.discontinuity) for r in out]
    assert summary == [
        (0, CutReason.KEYFRAME, False),
        (6_000, CutReason.KEYFRAME, False),
        (12_000, CutReason.KEYFRAME, False),
        (18_000, CutReason.KEYFRAME, False),
        (24_000, CutReason.DISCONTINUITY, False),
        (0, CutReason.KEYFRAME, True),
        (6_000, CutReason.END, False),
    ]
    assert out[4].duration_ms == 6_000
    assert videos(log, out[5])[0].keyframe


def test_gap_just_under_the_jump_threshold_is_not_a_discontinuity() -> None:
    gap_end = 1_000 + FRAME_MS + MAX_DTS_GAP_MS - FRAME_MS  # expected next + threshold
    events = [VC, *av_stream(0, 1_000, 1_000, audio=False), v(gap_end, True), v(gap_end + 40)]
    out, _, _ = run(events, frag_ms=1_000)
    assert [(r.first_dts_ms, r.discontinuity) for r in out] == [(0, False), (gap_end, False)]
    out, _, _ = run([*events[:-2], v(gap_end + 1, True)], frag_ms=1_000)
    assert [(r.first_dts_ms, r.discontinuity) for r in out] == [(0, False), (gap_end + 1, True)]


def test_duplicates_and_small_steps_back_are_bumped() -> None:
    events = [
        VC, AC, v(0, True), a(0), v(40), a(23), a(23), v(40), a(10),
        v(80), v(60), a(46), v(120), v(5_000, True), v(4_990), a(4_000), a(5_000), a(4_999),
    ]  # fmt: skip
    out, log, seg = run(events)
    assert [[f.dts_ms for f in videos(log, r)] for r in out] == [
        [0, 40, 41, 80, 81, 120],
        [5_000, 5_001],
    ]
    assert [[f.pts_ms for f in audios(log, r)] for r in out] == [
        [0, 23, 24, 25, 46],
        [4_000, 5_000, 5_001],  # arrived after the cutting keyframe
    ]
    for r in out:
        assert all(f.pts_ms >= f.dts_ms for f in videos(log, r))
    assert seg.stats.fixed_timestamps == 6


def test_audio_far_from_the_video_timeline_is_dropped() -> None:
    events = [VC, AC, v(0, True), a(0), a(MAX_DTS_GAP_MS + 1), a(-MAX_DTS_GAP_MS - 1), v(40), a(40)]
    out, log, seg = run(events)
    assert [f.pts_ms for f in audios(log, out[0])] == [0, 40]
    assert seg.stats.dropped_audio == 2


def test_audio_clock_restart_is_dropped_not_bumped() -> None:
    events = [VC, AC, v(0, True), a(3_000), v(40), a(1_000), a(3_010)]
    out, log, _ = run(events)
    assert [f.pts_ms for f in audios(log, out[0])] == [3_000, 3_010]


# --- tracks and configs ---------------------------------------------------------------------


def test_late_audio_joins_at_next_keyframe_with_discontinuity() -> None:
    events: list[MediaEvent] = [VC]
    for e in av_stream(0, 12_000, 1_000):
        if e == a(2_507):  # the first AAC frame after 2.5 s comes with its header
            events.append(AC)
        if isinstance(e, VideoFrame) or e.pts_ms >= 2_500:
            events.append(e)
    assert AC in events
    out, log, seg = run(events)
    assert [(r.first_dts_ms, r.reason, r.discontinuity) for r in out] == [
        (0, CutReason.TRACKS, False),
        (3_000, CutReason.KEYFRAME, True),
        (8_000, CutReason.END, False),
    ]
    assert out[0].duration_ms == 3_000
    assert muxer_of(log, out[0]) == (True, False, None)
    assert not audios(log, out[0])
    assert muxer_of(log, out[1]) == (True, True, AC)
    assert min(f.pts_ms for f in audios(log, out[1])) >= 3_000
    assert seg.stats.dropped_audio == sum(1 for e in events if isinstance(e, AudioFrame)) - sum(
        len(audios(log, r)) for r in out
    )
    assert seg.stats.dropped_audio > 0


def test_resolution_change_cuts_at_next_keyframe_with_discontinuity() -> None:
    events: list[MediaEvent] = [VC, AC]
    for e in av_stream(0, 12_000, 1_000):
        if e == v(7_520):
            events.append(VC_720P)
        events.append(e)
    events.append(VC_720P)  # a repeated header changes nothing
    out, log, seg = run(events)
    assert [(r.first_dts_ms, r.reason, r.discontinuity) for r in out] == [
        (0, CutReason.KEYFRAME, False),
        (5_000, CutReason.CONFIG, False),
        (8_000, CutReason.END, True),
    ]
    assert out[1].duration_ms == 3_000
    assert videos(log, out[1])[-1].dts_ms == 7_480  # frames of the new SPS before its IDR dropped
    assert seg.stats.dropped_video == (8_000 - 7_520) // FRAME_MS
    assert audios(log, out[1])[-1].pts_ms > 7_900  # audio kept flowing meanwhile


def test_audio_config_change_cuts_at_next_keyframe_with_discontinuity() -> None:
    events: list[MediaEvent] = [VC, AC]
    for e in av_stream(0, 12_000, 1_000):
        if e == v(7_520):
            events.append(AC_48K)
        events.append(e)
    out, log, _ = run(events)
    assert [(r.first_dts_ms, r.reason, r.discontinuity) for r in out] == [
        (0, CutReason.KEYFRAME, False),
        (5_000, CutReason.CONFIG, False),
        (8_000, CutReason.END, True),
    ]
    assert max(f.pts_ms for f in audios(log, out[1])) < 7_520  # new-config audio waited
    assert muxer_of(log, out[2]) == (True, True, AC_48K)
    assert len(log.muxers) == 2


def test_forced_cut_while_audio_waits_still_marks_the_track_change() -> None:
    # The AAC header comes after the first segment's track probe window (TRACK_PROBE_MS).
    events = [VC, v(0, True), *[v(t) for t in range(40, 1_520, 40)], AC]
    events += [e for e in av_stream(1_520, 61_500, None, first_key=False)]
    out, log, _ = run(events, frag_ms=1_000)
    assert [(r.first_dts_ms, r.reason, r.discontinuity) for r in out] == [
        (0, CutReason.FORCED, False),
        (60_000, CutReason.END, True),
    ]
    assert muxer_of(log, out[1]) == (True, True, AC)


# --- size and end ---------------------------------------------------------------------------


def test_size_cut() -> None:
    events = [VC, *[v(t, t == 0, size=1_000) for t in range(0, 4_000, 40)]]
    out, log, _ = run(events, max_segment_bytes=10_000)
    assert [r.reason for r in out[:-1]] == [CutReason.SIZE] * (len(out) - 1)
    assert all(len(videos(log, r)) == 10 for r in out)
    assert all(len(r.data) < 10_000 + 1_100 for r in out)  # over by less than one frame
    assert not any(r.discontinuity for r in out)
    assert [r.duration_ms for r in out[:-1]] == [400] * (len(out) - 1)


def test_flush_estimates_the_last_duration_and_is_idempotent() -> None:
    log = MuxLog()
    seg = Segmenter(5_000, muxer_factory=log.factory)
    assert seg.flush(0) == []
    feed(seg, [VC, v(0, True), v(33), v(66), v(100)])
    (last,) = seg.flush(1)
    assert last.reason is CutReason.END
    assert last.duration_ms == 100 + 33  # median frame interval of 33, 33, 34
    assert seg.flush(2) == []
    # A later keyframe starts afresh, as a discontinuity.
    assert feed(seg, [v(200), v(5_000, True), v(5_040)]) == []
    (again,) = seg.flush(3)
    assert (again.first_dts_ms, again.discontinuity) == (5_000, True)


def test_single_frame_segment_lasts_one_assumed_interval() -> None:
    out, _, _ = run([VC, v(0, True)])
    assert [r.duration_ms for r in out] == [40]


def test_end_of_stream_closes_the_segment() -> None:
    out, _, _ = run([VC, v(0, True), v(40), EndOfStream(), v(80), v(1_000, True), v(1_040)])
    assert [(r.first_dts_ms, r.reason, r.discontinuity) for r in out] == [
        (0, CutReason.END, False),
        (1_000, CutReason.END, True),
    ]


def test_rejects_nonsense_configuration() -> None:
    for kwargs in ({"frag_duration_ms": 0}, {"frag_duration_ms": 1, "max_segment_ms": 0}):
        with pytest.raises(ValueError):
            Segmenter(**kwargs)
    with pytest.raises(ValueError):
        Segmenter(1_000, max_segment_bytes=0)


def test_audio_header_just_after_first_keyframe_joins_the_first_segment() -> None:
    """nginx-rtmp relay: the AAC header arrives only after the first keyframe. Within
    TRACK_PROBE_MS the first segment is re-muxed with audio: no video-only segment and no
    track change for players to trip over."""
    stream = av_stream(0, 6_000, 2_000)
    first_audio = next(
        i for i, e in enumerate(stream) if isinstance(e, AudioFrame) and e.pts_ms > 0
    )
    events: list[MediaEvent] = [VC, *stream[:first_audio], AC, *stream[first_audio:]]
    out, log, _ = run(events, frag_ms=2_000)
    assert [(r.first_dts_ms, r.reason, r.discontinuity) for r in out] == [
        (0, CutReason.KEYFRAME, False),
        (2_000, CutReason.KEYFRAME, False),
        (4_000, CutReason.END, False),
    ]
    assert muxer_of(log, out[0]) == (True, True, AC)
    assert [f.dts_ms for f in videos(log, out[0])] == list(range(0, 2_000, 40))


def test_due_in_ms_points_at_the_keyframe_that_will_cut() -> None:
    """Without parts, `due_in_ms` (what a batching reader aims at) is the first keyframe at
    or past FragDuration, guessed from the last keyframe and the interval before it; before
    an interval is known, FragDuration itself."""
    seg = Segmenter(5_000, muxer_factory=MuxLog().factory)
    assert seg.due_in_ms() is None  # nothing open
    guesses: list[tuple[int, int]] = []  # (frame DTS, the cut it expects)
    cuts: list[int] = []
    for event in av_stream(0, 20_000, 2_000, audio=False):
        assert isinstance(event, VideoFrame)
        if feed(seg, [event]):
            cuts.append(event.dts_ms)
        due_ms = seg.due_in_ms()
        assert due_ms is not None
        guesses.append((event.dts_ms, event.dts_ms + due_ms))
    assert cuts == [6_000, 12_000, 18_000]
    assert {cut for t, cut in guesses if t < 2_000} == {5_000}  # no interval yet
    for start, end in zip([0, *cuts], cuts, strict=False):
        assert {cut for t, cut in guesses if max(start, 2_000) <= t < end} == {end}


def test_due_in_ms_with_parts_is_the_part_rule() -> None:
    seg = Segmenter(4_000, muxer_factory=MuxLog().factory, part_duration_ms=1_000)
    ends: list[int] = []
    for event in av_stream(0, 6_000, 2_000, audio=False):
        assert isinstance(event, VideoFrame)
        feed(seg, [event])
        due_ms = seg.due_in_ms()
        assert due_ms is not None
        ends.append(event.dts_ms + due_ms)
        assert [p.duration_ms for p in seg.take_parts()] in ([], [1_000])
    # A part is 1 s of 40 ms frames: it ends with the frame before one would pass 1 s.
    assert sorted(set(ends)) == [960, 1_960, 2_960, 3_960, 4_960, 5_960]
