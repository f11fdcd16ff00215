"""Streams no encoder sends on purpose, from our own publisher (tests/support/
rtmp_publisher.py): clock jumps, 24-bit and 32-bit timestamp transitions, an audio-only
stream, a mid-stream resolution change, a late AAC sequence header, repeated @setDataFrame.
The output must stay valid (RFC 8216 validator) and playable (every segment decodes on its
own, ffmpeg plays the playlist), with #EXT-X-DISCONTINUITY exactly where the clock jumped."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from livechannel.hls.pipeline import AUDIO_ONLY_LIMIT_MS
from samples.make_sample import SampleSpec, make_sample
from tests.support.output import (
    END_GRACE_S,
    LIST_ALL,
    Output,
    assert_plays,
    check_output,
    flv_counts,
)
from tests.support.rtmp_publisher import FlvTag, publish_sync, read_flv, set_data_frame
from tests.support.service import BUCKET, ServiceThread, create_channel

SPEC = SampleSpec(duration_s=8, width=320, height=180, fps=30, gop_s=1)
FRAG_DURATION_S = 2
JUMP_AT_MS = 4_500  # mid-GOP: the clock jumps on a non-key frame, as it would in real life
HOUR_MS = 3_600_000
EXTENDED_TIMESTAMP = 0xFFFFFF  # RTMP 1.0 5.3.1.3: from here the timestamp needs 4 more bytes
RTMP_CLOCK = 2**32  # RTMP timestamps are 32-bit milliseconds (wrap after ~49.7 days)
DEFAULT_CHUNK_SIZE = 128  # RTMP 1.0 5.4.1: every video frame spans many type-3 chunks


@pytest.fixture(scope="module")
def svc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceThread]:
    data = tmp_path_factory.mktemp("crafted") / "data"
    with ServiceThread(data, end_grace_s=END_GRACE_S).start() as service:
        yield service


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_sample(tmp_path_factory.mktemp("crafted-samples") / "gop1.flv", SPEC)


def push(svc: ServiceThread, channel: str, tags: list[FlvTag], **options: object) -> Output:
    create_channel(svc.bucket(), channel, frag_duration=FRAG_DURATION_S, frag_count=LIST_ALL)
    result = publish_sync(svc.signed_publish_url(channel, rtmp_port=True), tags, **options)
    assert result.started and not result.cut_off and result.refusal is None, result
    out = check_output(svc, channel, ended=True)
    assert_plays(svc, channel)
    return out


def jump(at_ms: int, by_ms: int) -> Callable[[int], int]:
    return lambda ts: ts + by_ms if ts >= at_ms else ts


@pytest.mark.parametrize(
    ("name", "by_ms"), [("jump-back", -JUMP_AT_MS), ("jump-forward-1h", HOUR_MS)]
)
def test_clock_jump_cuts_with_a_discontinuity(
    svc: ServiceThread, sample: Path, name: str, by_ms: int
) -> None:
    out = push(svc, name, read_flv(sample), timestamp_map=jump(JUMP_AT_MS, by_ms))
    marked = [i for i, s in enumerate(out.segments) if s.discontinuity]
    assert len(marked) == 1, [(s.key, s.duration_ms, s.discontinuity) for s in out.segments]
    before, after = out.probes[: marked[0]], out.probes[marked[0] :]
    # The jump is the boundary: the media before it ends near 4.5 s of its clock, the media
    # after it starts at most one GOP later on the new clock (a segment starts at a keyframe).
    end_before = max(p.video_end_s or 0 for p in before)
    start_after = after[0].video_start_s
    assert end_before == pytest.approx(before[0].video_start_s + JUMP_AT_MS / 1000, abs=0.1)
    assert start_after is not None
    expected_s = before[0].video_start_s + (JUMP_AT_MS + by_ms) / 1000
    assert expected_s <= start_after <= expected_s + SPEC.gop_s + 0.05
    # No segment's duration absorbs the jump.
    assert all(s.duration_ms <= 3 * FRAG_DURATION_S * 1000 for s in out.segments)
    video, _ = flv_counts(sample)
    assert video - SPEC.fps * SPEC.gop_s <= out.video_frames <= video


@pytest.mark.parametrize(
    ("name", "start_ms"),
    [("past-24-bit", EXTENDED_TIMESTAMP - 3_000), ("past-32-bit", RTMP_CLOCK - 3_000)],
)
def test_timestamp_transitions_are_seamless(
    svc: ServiceThread, sample: Path, name: str, start_ms: int
) -> None:
    """Type-0 headers on every message at the default chunk size: past 0xFFFFFF each header
    and each type-3 continuation chunk carries the extended timestamp; past 2**32 the RTMP
    clock wraps (and so does the 33-bit TS clock, 1.4 s earlier: 2**32 ms is 45 x 2**33 ticks)."""
    tags = read_flv(sample)
    assert max(len(t.body) for t in tags) > 4 * DEFAULT_CHUNK_SIZE  # keyframes span chunks
    crossing = EXTENDED_TIMESTAMP if start_ms < EXTENDED_TIMESTAMP else RTMP_CLOCK
    assert start_ms < crossing < start_ms + tags[-1].timestamp_ms - 2 * FRAG_DURATION_S * 1000
    out = push(
        svc,
        name,
        tags,
        timestamp_map=lambda ts: ts + start_ms,
        chunk_size=DEFAULT_CHUNK_SIZE,
        type0_headers=True,
    )
    assert not any(s.discontinuity for s in out.segments)
    assert [s.duration_ms for s in out.segments[:-1]] == [FRAG_DURATION_S * 1000] * (
        len(out.segments) - 1
    )
    assert (out.video_frames, out.audio_frames) == flv_counts(sample)


def test_audio_only_stream_is_refused(svc: ServiceThread, tmp_path: Path) -> None:
    flv = make_sample(
        tmp_path / "long.flv", replace(SPEC, duration_s=AUDIO_ONLY_LIMIT_MS / 1000 + 3)
    )
    tags = [t for t in read_flv(flv) if t.type_id != 9]
    create_channel(svc.bucket(), "radio", frag_duration=FRAG_DURATION_S, frag_count=LIST_ALL)
    result = publish_sync(svc.signed_publish_url("radio", rtmp_port=True), tags)
    assert result.started  # the publish is accepted; the stream itself is refused
    refusal = result.refusal
    assert refusal is not None, result
    assert (refusal.level, refusal.code) == ("error", "NetStream.Publish.Rejected")
    assert "video is required" in refusal.description
    svc.wait_idle("radio")
    assert svc.call(svc.store.last_segments(BUCKET, "radio", 10)) == []
    assert not svc.object_path("radio/playlist.m3u8").exists()
    (ended,) = svc.call(svc.store.history(BUCKET, "radio", 10))
    assert ended.end_ms is not None


NO_KEYFRAME_SPEC = SampleSpec(duration_s=64, width=160, height=90, fps=10, only_first_keyframe=True)
FORCED_CUT_S = 60  # the channel's forced-cut time: max(2 x FragDuration, 60 s)


def test_stream_without_keyframes_is_ended_with_the_reason(
    svc: ServiceThread, tmp_path: Path
) -> None:
    """Frames that never include a keyframe produce nothing; the push once stayed Live and
    empty with no word. Now it is refused after the forced-cut time of media, and said why."""
    flv = make_sample(tmp_path / "nokey.flv", NO_KEYFRAME_SPEC)
    tags = [t for t in read_flv(flv) if not t.is_video_keyframe]  # the one IDR frame, gone
    create_channel(svc.bucket(), "nokey", frag_duration=FRAG_DURATION_S, frag_count=LIST_ALL)
    result = publish_sync(svc.signed_publish_url("nokey", rtmp_port=True), tags)
    assert result.started
    refusal = result.refusal
    assert refusal is not None, result
    assert (refusal.level, refusal.code) == ("error", "NetStream.Publish.Rejected")
    assert f"no keyframe in the first {FORCED_CUT_S} s" in refusal.description
    svc.wait_idle("nokey")
    assert svc.call(svc.store.last_segments(BUCKET, "nokey", 10)) == []
    (ended,) = svc.call(svc.store.history(BUCKET, "nokey", 10))
    assert ended.end_ms is not None


def test_resolution_change_mid_stream(svc: ServiceThread, sample: Path, tmp_path: Path) -> None:
    """A new AVC sequence header (640x360 after 320x180), as an encoder reconfigured on the
    fly sends it: a discontinuity there, every segment decodes at its own size."""
    big = make_sample(tmp_path / "big.flv", replace(SPEC, duration_s=5, width=640, height=360))
    first = [t for t in read_flv(sample) if not _end_of_sequence(t)]
    offset_ms = round(SPEC.duration_s * 1000)
    second = [replace(t, timestamp_ms=t.timestamp_ms + offset_ms) for t in read_flv(big)]
    out = push(svc, "resize", first + second)
    marked = [i for i, s in enumerate(out.segments) if s.discontinuity]
    assert len(marked) == 1
    sizes = [(p.width, p.height) for p in out.probes]
    assert sizes == [(320, 180)] * marked[0] + [(640, 360)] * (len(sizes) - marked[0])
    assert out.video_frames == flv_counts(sample)[0] + flv_counts(big)[0]


def test_late_aac_sequence_header_joins_at_next_keyframe(
    svc: ServiceThread, tmp_path: Path
) -> None:
    """The AAC sequence header itself arrives 3 s after video started (not just the first
    audio frame): audio joins at the next keyframe with a discontinuity (new PMT), and from
    there no audio frame is lost."""
    flv = make_sample(tmp_path / "late.flv", replace(SPEC, audio_delay_s=3))
    tags = read_flv(flv)
    header = next(t for t in tags if t.type_id == 8 and t.is_sequence_header)
    first_audio = next(i for i, t in enumerate(tags) if t.type_id == 8 and t is not header)
    tags = [t for t in tags if t is not header]
    tags.insert(first_audio - 1, replace(header, timestamp_ms=tags[first_audio - 1].timestamp_ms))
    out = push(svc, "late-header", tags)
    marked = [i for i, s in enumerate(out.segments) if s.discontinuity]
    assert len(marked) == 1
    join = marked[0]
    assert [p.audio_frames > 0 for p in out.probes] == [i >= join for i in range(len(out.probes))]
    joined_at_s = out.probes[join].video_start_s - out.probes[0].video_start_s  # type: ignore[operator]
    assert 3 <= joined_at_s <= 3 + SPEC.gop_s + 0.05
    # Audio from the joining keyframe on is all there.
    audio_after = [
        t
        for t in tags
        if t.type_id == 8 and t.body[1] == 1 and t.timestamp_ms >= round(joined_at_s * 1000) + 50
    ]
    assert out.audio_frames >= len(audio_after)


def test_repeated_set_data_frame_is_harmless(svc: ServiceThread, sample: Path) -> None:
    """GStreamer's flvmux repeats onMetaData twice a second; nothing may change for it."""
    tags: list[FlvTag] = []
    next_meta_ms = 0
    for tag in read_flv(sample):
        if tag.timestamp_ms >= next_meta_ms:
            tags.append(set_data_frame({"width": 320.0, "height": 180.0}, tag.timestamp_ms))
            next_meta_ms += 500
        tags.append(tag)
    out = push(svc, "metadata", tags)
    assert not any(s.discontinuity for s in out.segments)
    assert [s.duration_ms for s in out.segments[:-1]] == [FRAG_DURATION_S * 1000] * (
        len(out.segments) - 1
    )
    assert (out.video_frames, out.audio_frames) == flv_counts(sample)


def _end_of_sequence(tag: FlvTag) -> bool:
    return tag.type_id == 9 and tag.body[1] == 2
