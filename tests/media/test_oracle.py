"""End to end against real encoders and real decoders.

libx264 + aac (PyAV) -> FLV in memory (libavformat's muxer, the same code ffmpeg uses to push
RTMP) -> iter_flv_tags -> Unwrapper -> Demuxer -> TsMuxer, cut into segments at keyframes.
Then PyAV *and* ffprobe decode the TS: no decode errors, every frame there, timestamps equal
(relative to the first video DTS) to what libavformat itself reads back from the FLV; audio
frames share PESs (mpegts.py) and are within RTMP's millisecond of their own timestamps.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import pytest
from av.video.frame import PictureType

from livechannel.media.demux import Demuxer
from livechannel.media.flv import TAG_TYPE_AUDIO, TAG_TYPE_VIDEO, iter_flv_tags
from livechannel.media.frames import AudioConfig, AudioFrame, VideoConfig, VideoFrame
from livechannel.media.mpegts import AUDIO_PID, AUDIO_PTS_SLACK_MS, TsMuxer
from livechannel.media.timestamps import Unwrapper
from tests.media.ts_reader import read_ts
from tests.support.media_oracle import (
    CASES,
    FPS,
    Case,
    demux_times,
    encode_flv,
    ffprobe,
)


@dataclass
class Pipeline:
    segments: list[bytes] = field(default_factory=list)
    video_frames: list[VideoFrame] = field(default_factory=list)
    audio_frames: list[AudioFrame] = field(default_factory=list)
    frames_per_segment: list[int] = field(default_factory=list)
    config: VideoConfig | None = None


def run_pipeline(flv: bytes) -> Pipeline:
    """As the segmenter does it: the muxer knows the audio configuration (the AAC sequence
    header comes before any frame), and a segment's end writes the audio the muxer holds."""
    demuxer, muxer = Demuxer(), TsMuxer(has_video=True, has_audio=True)
    clocks = {TAG_TYPE_VIDEO: Unwrapper(), TAG_TYPE_AUDIO: Unwrapper()}
    result = Pipeline()
    current = bytearray(muxer.start_segment())
    for tag_type, timestamp_ms, body in iter_flv_tags(flv):
        if tag_type == TAG_TYPE_VIDEO:
            events = demuxer.video(clocks[tag_type].unwrap(timestamp_ms), body)
        elif tag_type == TAG_TYPE_AUDIO:
            events = demuxer.audio(clocks[tag_type].unwrap(timestamp_ms), body)
        else:
            continue
        for event in events:
            if isinstance(event, VideoFrame):
                if event.keyframe and result.video_frames:  # cut: a new segment per GOP
                    current += b"".join(muxer.end_fragment(event.dts_ms))
                    result.segments.append(bytes(current))
                    result.frames_per_segment.append(0)
                    current = bytearray(muxer.start_segment())
                if not result.frames_per_segment:
                    result.frames_per_segment.append(0)
                result.frames_per_segment[-1] += 1
                result.video_frames.append(event)
                current += muxer.video(event)
            elif isinstance(event, AudioFrame):
                result.audio_frames.append(event)
                current += muxer.audio(event)
            elif isinstance(event, VideoConfig):
                result.config = event
            elif isinstance(event, AudioConfig):
                assert not result.audio_frames
                muxer = TsMuxer(has_video=True, has_audio=True, audio_config=event)
    current += b"".join(muxer.end_fragment(None))
    result.segments.append(bytes(current))
    return result


def decode(
    data: bytes, *, audio: bool = True
) -> tuple[list[av.VideoFrame], int, list[tuple[int, str, str]]]:
    """Decode everything; returns (video frames, audio frame count, problems), where problems
    are libav warnings/errors and decoder exceptions."""
    problems: list[tuple[int, str, str]] = []
    video, audio_count = [], 0
    av.logging.set_level(av.logging.WARNING)
    try:
        with (
            av.logging.Capture(local=False) as logs,  # decoder threads log too
            av.open(io.BytesIO(data), format="mpegts") as c,
        ):
            streams = [c.streams.video[0], *(c.streams.audio[:1] if audio else [])]
            for packet in c.demux(*streams):
                try:
                    frames = packet.decode()
                except av.FFmpegError as e:
                    problems.append((av.logging.ERROR, "decode", str(e)))
                    continue
                for frame in frames:
                    if isinstance(frame, av.VideoFrame):
                        video.append(frame)
                    else:
                        audio_count += 1
    finally:
        av.logging.set_level(None)
    return video, audio_count, problems + list(logs)


@pytest.fixture(scope="module", params=CASES, ids=[c.name for c in CASES])
def encoded(request: pytest.FixtureRequest) -> tuple[Case, bytes, Pipeline]:
    case: Case = request.param
    flv = encode_flv(case)
    return case, flv, run_pipeline(flv)


def test_timestamps_preserved(encoded: tuple[Case, bytes, Pipeline]) -> None:
    case, flv, result = encoded
    flv_video, flv_audio, flv_tb = demux_times(flv, "flv")
    ts_video, ts_audio, ts_tb = demux_times(b"".join(result.segments), "mpegts")
    assert flv_tb == Fraction(1, 1000) and ts_tb == Fraction(1, 90000)
    assert len(flv_video) == case.seconds * FPS
    assert len(ts_video) == len(flv_video)  # all frames present
    assert len(ts_audio) == len(flv_audio)
    flv_origin, ts_origin = flv_video[0][1], ts_video[0][1]
    assert [((p - ts_origin), (d - ts_origin)) for p, d in ts_video] == [
        ((p - flv_origin) * 90, (d - flv_origin) * 90) for p, d in flv_video
    ]
    # Several frames share a PES: each is where its samples put it, within RTMP's rounding.
    audio_errors_90k = [
        abs((p - ts_origin) - (f - flv_origin) * 90)
        for p, f in zip(ts_audio, flv_audio, strict=True)
    ]
    assert max(audio_errors_90k) <= AUDIO_PTS_SLACK_MS * 90
    audio_pes = [p for s in result.segments for p in read_ts(s).pes if p.pid == AUDIO_PID]
    assert len(audio_pes) < len(ts_audio) / 3
    if "bframes=0" not in case.x264_params:  # reordering really happened and survived
        assert any(p != d for p, d in ts_video)


def test_pyav_decodes_everything_without_errors(encoded: tuple[Case, bytes, Pipeline]) -> None:
    case, _, result = encoded
    frames, audio_count, logs = decode(b"".join(result.segments))
    assert logs == []
    assert len(frames) == case.seconds * FPS
    assert audio_count == len(result.audio_frames)
    assert (frames[0].width, frames[0].height) == (case.width, case.height)
    assert frames[0].key_frame and frames[0].pict_type == PictureType.I
    assert result.video_frames[0].keyframe


def test_every_segment_decodes_alone(encoded: tuple[Case, bytes, Pipeline]) -> None:
    _, _, result = encoded
    assert len(result.segments) >= 2
    for segment, expected in zip(result.segments, result.frames_per_segment, strict=True):
        frames, _, logs = decode(segment)
        assert logs == []
        assert len(frames) == expected
        assert frames[0].key_frame


def test_the_oracle_sees_a_segment_without_parameter_sets(
    encoded: tuple[Case, bytes, Pipeline],
) -> None:
    """Guard the oracle itself: strip the in-band SPS/PPS from a later GOP and decoding it
    alone must fail loudly, so the passing tests above mean something."""
    _, _, result = encoded
    assert result.config is not None
    first_gop = result.frames_per_segment[0]
    gop = result.video_frames[first_gop : first_gop + result.frames_per_segment[1]]
    key = gop[0]
    stripped = key.data
    for nal in (*result.config.sps, *result.config.pps):
        stripped = stripped.replace(b"\x00\x00\x00\x01" + nal, b"")
    assert stripped != key.data
    muxer = TsMuxer(has_video=True, has_audio=False)
    ts = muxer.start_segment() + muxer.video(VideoFrame(key.dts_ms, key.pts_ms, True, stripped))
    ts += b"".join(muxer.video(f) for f in gop[1:])
    frames, _, logs = decode(ts, audio=False)
    assert logs
    assert len(frames) < len(gop)


def test_ffprobe_agrees(encoded: tuple[Case, bytes, Pipeline], tmp_path: Path) -> None:
    case, _, result = encoded
    path = tmp_path / "all.ts"
    path.write_bytes(b"".join(result.segments))
    info = ffprobe(path, "-count_frames", "-show_streams")
    video = next(s for s in info["streams"] if s["codec_type"] == "video")
    audio = next(s for s in info["streams"] if s["codec_type"] == "audio")
    assert (video["codec_name"], video["width"], video["height"]) == (
        "h264",
        case.width,
        case.height,
    )
    assert int(video["nb_read_frames"]) == case.seconds * FPS
    assert audio["codec_name"] == "aac"
    assert int(audio["sample_rate"]) == case.sample_rate
    assert audio["channels"] == (1 if case.layout == "mono" else 2)
    assert int(audio["nb_read_frames"]) == len(result.audio_frames)
    first = ffprobe(path, "-select_streams", "v", "-show_frames", "-read_intervals", "%+#1")
    assert first["frames"][0]["pict_type"] == "I" and first["frames"][0]["key_frame"] == 1
