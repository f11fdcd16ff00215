"""Our fMP4 muxer against real encoders and real decoders.

libx264 + aac (PyAV) -> FLV in memory -> Demuxer -> Segmenter with Fmp4Muxer. Then PyAV and
ffprobe read init section + fragments: every frame there, timestamps equal (relative to the
first video DTS) to what libavformat reads back from the FLV, no decoder complaint, and every
segment decodes alone behind its init section (what a player joining there does).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import pytest

from livechannel.hls import segmenter as segmenter_module
from livechannel.hls.segmenter import Segmenter
from livechannel.hls.segments import SegmentReady
from livechannel.media.demux import Demuxer
from livechannel.media.flv import TAG_TYPE_AUDIO, TAG_TYPE_VIDEO, iter_flv_tags
from livechannel.media.fmp4 import Fmp4Muxer
from livechannel.media.frames import AudioFrame, VideoFrame
from livechannel.media.timestamps import Unwrapper
from tests.support.media_oracle import (
    CASES,
    FPS,
    Case,
    decode_all,
    demux_times,
    encode_flv,
    ffprobe,
)


@dataclass
class Result:
    segments: list[SegmentReady] = field(default_factory=list)
    video: int = 0
    audio: int = 0  # audio frames muxed (the segmenter drops those before the first keyframe)

    @property
    def init(self) -> bytes:
        init = self.segments[0].init
        assert init is not None and all(s.init == init for s in self.segments)
        return init

    def stream(self) -> bytes:
        return self.init + b"".join(s.data for s in self.segments)


def segment_fmp4(flv: bytes, frag_ms: int = 1000) -> Result:
    demuxer, segmenter = Demuxer(), Segmenter(frag_ms, muxer_factory=Fmp4Muxer)
    clocks = {TAG_TYPE_VIDEO: Unwrapper(), TAG_TYPE_AUDIO: Unwrapper()}
    result = Result()
    for tag_type, timestamp_ms, body in iter_flv_tags(flv):
        if tag_type == TAG_TYPE_VIDEO:
            events = demuxer.video(clocks[tag_type].unwrap(timestamp_ms), body)
        elif tag_type == TAG_TYPE_AUDIO:
            events = demuxer.audio(clocks[tag_type].unwrap(timestamp_ms), body)
        else:
            continue
        for event in events:
            result.video += isinstance(event, VideoFrame)
            result.audio += isinstance(event, AudioFrame)
            result.segments += segmenter.push(event, 0)
    result.segments += segmenter.flush(0)
    result.audio -= segmenter.stats.dropped_audio
    return result


@pytest.fixture(scope="module", params=CASES, ids=[c.name for c in CASES])
def encoded(request: pytest.FixtureRequest) -> tuple[Case, bytes, Result]:
    case: Case = request.param
    flv = encode_flv(case)
    return case, flv, segment_fmp4(flv)


def test_timestamps_preserved(encoded: tuple[Case, bytes, Result]) -> None:
    case, flv, result = encoded
    flv_video, flv_audio, _ = demux_times(flv, "flv")
    mp4_video, mp4_audio, tb = demux_times(result.stream(), "mp4")
    assert tb == Fraction(1, 90000)
    assert len(mp4_video) == len(flv_video) == case.seconds * FPS
    assert len(mp4_audio) == result.audio
    flv_origin, mp4_origin = flv_video[0][1], mp4_video[0][1]
    assert [(p - mp4_origin, d - mp4_origin) for p, d in mp4_video] == [
        ((p - flv_origin) * 90, (d - flv_origin) * 90) for p, d in flv_video
    ]
    # Audio: 1024 samples a frame at the sample rate, against the FLV's whole milliseconds.
    kept = flv_audio[len(flv_audio) - result.audio :]
    rate = case.sample_rate
    origin_ms = mp4_origin / 90 - flv_origin
    for mp4_pts, flv_pts in zip(mp4_audio, kept, strict=True):
        assert abs(mp4_pts * 1000 / rate - origin_ms - flv_pts) <= 1
    if "bframes=0" not in case.x264_params:
        assert any(p != d for p, d in mp4_video)


def test_pyav_and_ffprobe_decode_every_frame(
    encoded: tuple[Case, bytes, Result], tmp_path: Path
) -> None:
    case, _, result = encoded
    video, audio, logs, first_key = decode_all(result.stream())
    assert logs == [] and first_key
    assert video == result.video == case.seconds * FPS
    assert audio == result.audio
    path = tmp_path / "all.mp4"
    path.write_bytes(result.stream())
    probe = ffprobe(path, "-count_frames", "-show_streams")
    streams = {s["codec_type"]: s for s in probe["streams"]}
    assert streams["video"]["codec_name"] == "h264"
    assert (streams["video"]["width"], streams["video"]["height"]) == (case.width, case.height)
    assert int(streams["video"]["nb_read_frames"]) == video
    assert streams["audio"]["codec_name"] == "aac"
    assert int(streams["audio"]["sample_rate"]) == case.sample_rate
    assert int(streams["audio"]["nb_read_frames"]) == audio


def test_every_segment_decodes_alone_behind_the_init_section(
    encoded: tuple[Case, bytes, Result],
) -> None:
    _, _, result = encoded
    assert len(result.segments) >= 2
    total = 0
    for segment in result.segments:
        video, _, logs, first_key = decode_all(result.init + segment.data)
        assert logs == [] and first_key and video > 0
        total += video
    assert total == result.video


def test_segment_size_limit_counts_what_the_muxer_holds() -> None:
    """fMP4 muxers return nothing per frame; the SIZE cut must still see the bytes."""
    case = CASES[1]
    flv = encode_flv(Case(case.name, 320, 240, case.x264_params, case.preset,
                          case.sample_rate, case.layout, 2))  # fmt: skip
    demuxer, segmenter = Demuxer(), Segmenter(10_000, muxer_factory=Fmp4Muxer,
                                              max_segment_bytes=20_000)  # fmt: skip
    ready = []
    for tag_type, ts, body in iter_flv_tags(flv):
        if tag_type == TAG_TYPE_VIDEO:
            for event in demuxer.video(ts, body):
                ready += segmenter.push(event, 0)
    assert len(ready) >= 2
    assert all(r.size < 20_000 + 64 * 1024 for r in ready)


def test_ll_hls_parts_are_the_segment_cut_into_fragments() -> None:
    """Parts of 500 ms: each ends before the frame that would take it past the target, the
    first of a segment is independent, and a segment's bytes are its parts' bytes."""
    case = CASES[0]  # 30 fps, keyframe every second, B-frames
    flv = encode_flv(case)
    demuxer, segmenter = Demuxer(), Segmenter(1000, muxer_factory=Fmp4Muxer, part_duration_ms=500)
    clocks = {TAG_TYPE_VIDEO: Unwrapper(), TAG_TYPE_AUDIO: Unwrapper()}
    segments, parts = [], []
    for tag_type, timestamp_ms, body in iter_flv_tags(flv):
        if tag_type not in clocks:
            continue
        unwrap = clocks[tag_type].unwrap(timestamp_ms)
        events = (
            demuxer.video(unwrap, body)
            if tag_type == TAG_TYPE_VIDEO
            else demuxer.audio(unwrap, body)
        )
        for event in events:
            segments += segmenter.push(event, 0)
            parts += segmenter.take_parts()
    segments += segmenter.flush(0)
    parts += segmenter.take_parts()
    assert len(segments) == case.seconds
    for segment in segments:
        mine = [
            p
            for p in parts
            if p.segment_arrival_ms == segment.arrival_ms
            and p.first_dts_ms >= segment.first_dts_ms
            and p.first_dts_ms < segment.first_dts_ms + segment.duration_ms
        ]
        assert [p.index for p in mine] == list(range(len(mine))) and len(mine) == 2
        assert b"".join(b"".join(p.chunks) for p in mine) == segment.data
        assert sum(p.duration_ms for p in mine) == segment.duration_ms
        assert all(p.duration_ms <= 500 for p in mine)
        assert [p.independent for p in mine] == [True, False]
        init = segments[0].init
        assert init is not None
        video, _, logs, first_key = decode_all(init + b"".join(b"".join(p.chunks) for p in mine))
        assert logs == [] and first_key and video == FPS


def test_a_segment_of_many_fragments_keeps_every_frame_and_timestamp(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without parts a segment is cut into fragments of FMP4_FRAGMENT_BYTES (so storage can
    take it as it grows): every frame and timestamp survives, and each segment still decodes
    alone behind the init section."""
    monkeypatch.setattr(segmenter_module, "FMP4_FRAGMENT_BYTES", 4 * 1024)
    case = CASES[0]
    flv = encode_flv(case)
    result = segment_fmp4(flv)
    assert all(s.data.count(b"moof") >= 3 for s in result.segments)
    flv_video, flv_audio, _ = demux_times(flv, "flv")
    mp4_video, mp4_audio, _ = demux_times(result.stream(), "mp4")
    flv_origin, mp4_origin = flv_video[0][1], mp4_video[0][1]
    assert [(p - mp4_origin, d - mp4_origin) for p, d in mp4_video] == [
        ((p - flv_origin) * 90, (d - flv_origin) * 90) for p, d in flv_video
    ]
    kept = flv_audio[len(flv_audio) - result.audio :]
    origin_ms = mp4_origin / 90 - flv_origin
    for mp4_pts, flv_pts in zip(mp4_audio, kept, strict=True):
        assert abs(mp4_pts * 1000 / case.sample_rate - origin_ms - flv_pts) <= 1
    video, audio, logs, first_key = decode_all(result.stream())
    assert logs == [] and first_key and (video, audio) == (result.video, result.audio)
    for segment in result.segments:
        video, _, logs, first_key = decode_all(result.init + segment.data)
        assert logs == [] and first_key and video > 0
