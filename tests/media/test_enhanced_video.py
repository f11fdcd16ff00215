"""Enhanced RTMP video in the demuxer, from real encoders: libx265 and SVT-AV1 through
libavformat's FLV muxer (which writes the ExVideoTagHeader), and hand-made tags for the
packet types libavformat does not send (CodedFramesX, ModEx)."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest

from livechannel.media.codecs import audio_codec_string, codecs_attribute, video_codec_string
from livechannel.media.demux import Demuxer, EndOfStream, UnsupportedVideo
from livechannel.media.flv import TAG_TYPE_VIDEO, iter_flv_tags
from livechannel.media.frames import AudioConfig, VideoConfig, VideoFrame
from livechannel.media.opus import dops_payload, packet_samples, parse_opus_head
from samples.make_sample import SampleSpec, make_sample

FRAMES = 30


@functools.cache
def demuxed(codec: str, directory: Path) -> list[object]:
    spec = SampleSpec(duration_s=1, width=352, height=288, gop_s=0.5, audio=False,
                      video_bitrate=200_000, video_codec=codec)  # fmt: skip
    flv = make_sample(directory / f"{codec}.flv", spec).read_bytes()
    demuxer = Demuxer()
    out: list[object] = []
    for tag_type, ts, body in iter_flv_tags(flv):
        if tag_type == TAG_TYPE_VIDEO:
            assert body[0] & 0x80  # really the enhanced layout
            out += demuxer.video(ts, body)
    return out


@pytest.fixture(scope="module")
def samples_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("enhanced")


@pytest.fixture(scope="module", params=["libx265", "libsvtav1"])
def events(request: pytest.FixtureRequest, samples_dir: Path) -> tuple[str, list[object]]:
    return request.param, demuxed(request.param, samples_dir)


def test_config_and_frames(events: tuple[str, list[object]]) -> None:
    codec, out = events
    configs = [e for e in out if isinstance(e, VideoConfig)]
    frames = [e for e in out if isinstance(e, VideoFrame)]
    assert len(configs) == 1 and configs[0].record
    config = configs[0]
    assert config.codec == {"libx265": "HEVC", "libsvtav1": "AV1"}[codec]
    assert (config.width, config.height) == (352, 288)
    assert len(frames) == FRAMES
    assert [i for i, f in enumerate(frames) if f.keyframe] == [0, 15]  # gop 0.5 s at 30 fps
    assert all(f.pts_ms >= f.dts_ms for f in frames)
    string = video_codec_string(config)
    assert string.startswith("hvc1.1.6.L" if codec == "libx265" else "av01.0.")


def hand_made(packet_type: int, fourcc: bytes, body: bytes, frame_type: int = 1) -> bytes:
    return bytes((0x80 | frame_type << 4 | packet_type,)) + fourcc + body


def test_coded_frames_x_mod_ex_and_sequence_end(samples_dir: Path) -> None:
    out = demuxed("libx265", samples_dir)
    config = next(e for e in out if isinstance(e, VideoConfig))
    key = next(e for e in out if isinstance(e, VideoFrame) and e.keyframe)
    demuxer = Demuxer()
    assert demuxer.video(0, hand_made(0, b"hvc1", config.record)) == [config]
    assert demuxer.video(0, hand_made(0, b"hvc1", config.record)) == []  # repeated: nothing
    # CodedFramesX: no composition time, PTS = DTS.
    assert demuxer.video(40, hand_made(3, b"hvc1", key.data)) == [
        VideoFrame(40, 40, True, key.data)
    ]
    # CodedFrames with a composition time of 80 ms; wrapped in a ModEx block (v2).
    mod_ex = bytes((0x80 | 1 << 4 | 7, 0, 0x00, 0x01)) + b"hvc1" + b"\x00\x00\x50" + key.data
    assert demuxer.video(80, mod_ex) == [VideoFrame(80, 160, True, key.data)]
    assert demuxer.video(99, hand_made(2, b"hvc1", b"")) == [EndOfStream()]
    # An unknown FourCC is still refused by name.
    assert Demuxer().video(0, hand_made(0, b"xyz1", b"")) == [UnsupportedVideo("FourCC 'xyz1'")]


def test_codecs_attribute() -> None:
    h264 = VideoConfig("H264", 640, 360, 4, (b"\x67\x64\x00\x1f",), (b"\x68",))
    aac = AudioConfig("AAC", 2, 44_100, 2, 4)
    assert codecs_attribute(h264, aac) == "avc1.64001f,mp4a.40.2"
    assert audio_codec_string(aac) == "mp4a.40.2"
    av1 = VideoConfig("AV1", 0, 0, 0, (), (), bytes((0x81, 0x08, 0x0C, 0)))
    assert video_codec_string(av1) == "av01.0.08M.08"


def test_opus_packet_durations_and_head() -> None:
    """RFC 6716 3.1 TOC bytes -> 48 kHz samples; OpusHead -> dOps (big-endian, version 0)."""
    assert packet_samples(bytes((31 << 3,))) == 960  # CELT FB 20 ms, one frame
    assert packet_samples(bytes((3 << 3 | 1,))) == 2 * 2880  # SILK 60 ms, two frames
    assert packet_samples(bytes((30 << 3 | 3, 3))) == 3 * 480  # CELT 10 ms, three frames
    assert packet_samples(bytes((3 << 3 | 3, 5))) == 5760  # capped at 120 ms
    head = (
        b"OpusHead"
        + bytes((1, 2))
        + (312).to_bytes(2, "little")
        + (48000).to_bytes(4, "little")
        + bytes(3)
    )
    config = parse_opus_head(head)
    assert (config.codec, config.channels, config.sample_rate) == ("Opus", 2, 48000)
    assert dops_payload(config) == bytes((0, 2)) + (312).to_bytes(2, "big") + (48000).to_bytes(
        4, "big"
    ) + bytes(3)
    assert audio_codec_string(config) == "opus"
