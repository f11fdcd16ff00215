"""Demuxer: sequence headers, config changes, dropped early frames, unsupported codecs."""

from __future__ import annotations

import pytest

from livechannel.media.demux import Demuxer, EndOfStream, UnsupportedAudio, UnsupportedVideo
from livechannel.media.errors import MediaError
from livechannel.media.frames import AudioConfig, AudioFrame, VideoConfig, VideoFrame

AVCC = bytes.fromhex(
    "0164001effe100196764001eacd940a02ff9610000030001000003003c0f162d9601000468ef8fcbfdf8f800"
)
SPS = bytes.fromhex("6764001eacd940a02ff9610000030001000003003c0f162d96")
PPS = bytes.fromhex("68ef8fcb")
START = b"\x00\x00\x00\x01"
VIDEO_SEQ = b"\x17\x00\x00\x00\x00" + AVCC
AUDIO_SEQ = b"\xaf\x00\x12\x10"
IDR = b"\x65\x88\x84\x00\x33"
P_SLICE = b"\x41\x9a\x02"


def avc(frame_type: int, cts_ms: int, *nals: bytes) -> bytes:
    body = b"".join(len(n).to_bytes(4, "big") + n for n in nals)
    return bytes((frame_type << 4 | 7, 1)) + cts_ms.to_bytes(3, "big", signed=True) + body


def test_ffmpeg_like_sequence() -> None:
    d = Demuxer()
    (config,) = d.video(0, VIDEO_SEQ)
    assert isinstance(config, VideoConfig)
    assert (config.width, config.height) == (640, 360)
    (audio_config,) = d.audio(0, AUDIO_SEQ)
    assert audio_config == AudioConfig("AAC", 2, 44100, 2, 4)
    (key,) = d.video(0, avc(1, 67, b"\x06\x05\x00", IDR))
    assert key == VideoFrame(
        dts_ms=0,
        pts_ms=67,
        keyframe=True,
        data=START
        + b"\x09\xf0"
        + START
        + SPS
        + START
        + PPS
        + START
        + b"\x06\x05\x00"
        + START
        + IDR,
    )
    (frame,) = d.video(33, avc(2, -10, P_SLICE))
    assert isinstance(frame, VideoFrame)
    assert (frame.dts_ms, frame.pts_ms, frame.keyframe) == (33, 23, False)
    (audio,) = d.audio(23, b"\xaf\x01" + b"\x21" * 10)
    assert audio == AudioFrame(pts_ms=23, data=bytes.fromhex("fff15080023ffc") + b"\x21" * 10)
    assert d.video(100, b"\x17\x02\x00\x00\x00") == [EndOfStream()]


def test_repeated_sequence_header_yields_nothing_and_a_changed_one_yields_it() -> None:
    d = Demuxer()
    assert len(d.video(0, VIDEO_SEQ)) == 1
    assert d.video(1000, VIDEO_SEQ) == []
    assert len(d.audio(0, AUDIO_SEQ)) == 1
    assert d.audio(1000, AUDIO_SEQ) == []
    sps_720 = bytes.fromhex("6764001facd9405005ba1000000300100000030320f1831960")
    avcc_720 = AVCC[:6] + len(sps_720).to_bytes(2, "big") + sps_720 + AVCC[33:]
    (changed,) = d.video(2000, b"\x17\x00\x00\x00\x00" + avcc_720)
    assert isinstance(changed, VideoConfig) and (changed.width, changed.height) == (1280, 720)
    (changed_audio,) = d.audio(2000, b"\xaf\x00\x11\x88")
    assert changed_audio == AudioConfig("AAC", 2, 48000, 1, 3)
    assert d.video_config == changed and d.audio_config == changed_audio


def test_frames_before_their_config_are_dropped() -> None:
    d = Demuxer()
    assert d.video(0, avc(1, 0, IDR)) == []
    assert d.audio(0, b"\xaf\x01\x21\x22") == []
    d.video(10, VIDEO_SEQ)
    assert len(d.video(20, avc(1, 0, IDR))) == 1


def test_flv_keyframe_flag_is_not_trusted() -> None:
    d = Demuxer()
    d.video(0, VIDEO_SEQ)
    (flagged,) = d.video(0, avc(1, 0, P_SLICE))  # says keyframe, is not an IDR
    (unflagged,) = d.video(33, avc(2, 0, IDR))  # says inter, is an IDR
    assert isinstance(flagged, VideoFrame) and not flagged.keyframe
    assert isinstance(unflagged, VideoFrame) and unflagged.keyframe
    assert SPS in unflagged.data


def test_empty_frames_and_commands_yield_nothing() -> None:
    d = Demuxer()
    d.video(0, VIDEO_SEQ)
    d.audio(0, AUDIO_SEQ)
    assert d.video(0, b"\x27\x01\x00\x00\x00") == []
    assert d.video(0, b"\x57\x00") == []
    assert d.audio(0, b"\xaf\x01") == []
    assert d.video(0, b"\x17\x00\x00\x00\x00") == []  # empty sequence headers
    assert d.audio(0, b"\xaf\x00") == []
    assert d.video_config is not None and d.audio_config is not None


def test_non_h264_video_is_unsupported() -> None:
    d = Demuxer()
    assert d.video(0, b"\x1c\x00\x00\x00\x00\x01") == [UnsupportedVideo("HEVC")]
    # Enhanced RTMP HEVC is taken now (into fMP4): a truncated hvcC is malformed media.
    with pytest.raises(MediaError):
        d.video(0, b"\x90hvc1\x01")
    assert d.video(0, b"\x22\x00") == [UnsupportedVideo("Sorenson H.263")]


def test_enhanced_rtmp_avc_is_supported() -> None:
    d = Demuxer()
    (config,) = d.video(0, b"\x90avc1" + AVCC)
    assert isinstance(config, VideoConfig)
    (frame,) = d.video(40, b"\xa1avc1\x00\x00\x21" + len(P_SLICE).to_bytes(4, "big") + P_SLICE)
    assert isinstance(frame, VideoFrame) and frame.pts_ms == 73


def test_non_aac_audio_reported_once() -> None:
    d = Demuxer()
    assert d.audio(0, b"\x2f\xff\xfb") == [UnsupportedAudio("MP3")]
    assert d.audio(26, b"\x2f\xff\xfb") == []


def test_aac_that_adts_cannot_carry_is_unsupported_audio() -> None:
    d = Demuxer()
    assert d.audio(0, b"\xaf\x00\xf8\xe6\x20\x00") == [UnsupportedAudio("AAC object type 39")]
    assert d.audio(0, b"\xaf\x01\x21") == []  # no usable config: frames dropped
    assert d.audio_config is None


def test_enhanced_rtmp_aac_is_supported() -> None:
    d = Demuxer()
    (config,) = d.audio(0, b"\x90mp4a\x11\x90")
    assert config == AudioConfig("AAC", 2, 48000, 2, 3)
    (frame,) = d.audio(21, b"\x91mp4a\x21\x22")
    assert isinstance(frame, AudioFrame) and frame.data[-2:] == b"\x21\x22"
