"""AVCDecoderConfigurationRecord, AVCC -> Annex B, access-unit assembly, IDR detection."""

from __future__ import annotations

import pytest

from livechannel.media.errors import MediaError
from livechannel.media.h264 import (
    avcc_to_annexb,
    build_access_unit,
    is_idr,
    parse_avc_decoder_config,
    split_avcc,
)

# The AVC sequence header PyAV 18's FLV muxer writes for libx264 640x360 High (after the
# 5-byte FLV video tag header): version 1, High@3.0, 4-byte lengths, one SPS, one PPS, and the
# High-profile trailer (chroma 4:2:0, 8-bit, no SPS extensions).
FFMPEG_AVCC = bytes.fromhex(
    "0164001effe100196764001eacd940a02ff9610000030001000003003c0f162d9601000468ef8fcbfdf8f800"
)
SPS = bytes.fromhex("6764001eacd940a02ff9610000030001000003003c0f162d96")
PPS = bytes.fromhex("68ef8fcb")
START = b"\x00\x00\x00\x01"
AUD = START + b"\x09\xf0"


def test_ffmpeg_avcc() -> None:
    config = parse_avc_decoder_config(FFMPEG_AVCC)
    assert config.codec == "H264"
    assert (config.width, config.height) == (640, 360)
    assert config.nal_length_size == 4
    assert config.sps == (SPS,)
    assert config.pps == (PPS,)


def test_avcc_with_two_byte_lengths_and_several_pps() -> None:
    record = (
        bytes((1, 0x64, 0, 0x1E, 0xFD, 0xE1)) + len(SPS).to_bytes(2, "big") + SPS
        + b"\x02" + b"\x00\x02\x68\x01" + b"\x00\x03\x68\x02\x03"
    )  # fmt: skip
    config = parse_avc_decoder_config(record)
    assert config.nal_length_size == 2
    assert config.pps == (b"\x68\x01", b"\x68\x02\x03")


@pytest.mark.parametrize(
    "record",
    [
        b"",
        FFMPEG_AVCC[:5],
        b"\x02" + FFMPEG_AVCC[1:],  # configurationVersion 2
        FFMPEG_AVCC[:6] + b"\x00",  # SPS length cut
        FFMPEG_AVCC[:20],  # SPS cut
        FFMPEG_AVCC[:33],  # ends before the PPS count
        FFMPEG_AVCC[:35],  # PPS length cut
        bytes((1, 0x64, 0, 0x1E, 0xFF, 0xE0, 0)),  # no SPS at all
        bytes((1, 0x64, 0, 0x1E, 0xFF, 0xE1, 0, 0, 0)),  # empty SPS
    ],
)
def test_bad_avcc(record: bytes) -> None:
    with pytest.raises(MediaError):
        parse_avc_decoder_config(record)


def test_avcc_to_annexb() -> None:
    data = b"\x00\x00\x00\x02\x09\xf0" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x03\x65\x88\x84"
    assert avcc_to_annexb(data, 4) == AUD + START + b"\x65\x88\x84"  # empty NAL dropped
    assert avcc_to_annexb(b"\x03\x41\x9a\x02", 1) == START + b"\x41\x9a\x02"
    assert avcc_to_annexb(b"\x00\x00\x02\x41\x9a", 3) == START + b"\x41\x9a"
    assert avcc_to_annexb(b"", 4) == b""


@pytest.mark.parametrize(
    ("data", "size"),
    [(b"\x00\x00\x00\x05\x65\x00", 4), (b"\x00\x00", 4), (b"\x05\x65", 1), (b"\x01\x65", 5)],
)
def test_bad_avcc_frames(data: bytes, size: int) -> None:
    with pytest.raises(MediaError):
        split_avcc(data, size)


def _config():  # type: ignore[no-untyped-def]
    return parse_avc_decoder_config(FFMPEG_AVCC)


def test_idr_without_parameter_sets_gets_them_after_the_aud() -> None:
    sei, idr = b"\x06\x05\x01\x00\x80", b"\x65\x88\x84\x00"
    data, key = build_access_unit([sei, idr], _config())
    assert key
    assert data == AUD + START + SPS + START + PPS + START + sei + START + idr


def test_idr_with_in_band_parameter_sets_is_left_alone() -> None:
    sps2, pps2, idr = b"\x67\x42\x00\x1e", b"\x68\xce", b"\x65\x88"
    data, key = build_access_unit([sps2, pps2, idr], _config())
    assert key
    assert data == AUD + START + sps2 + START + pps2 + START + idr


def test_idr_with_only_in_band_sps_gets_the_pps() -> None:
    sps2, idr = b"\x67\x42\x00\x1e", b"\x65\x88"
    data, _ = build_access_unit([sps2, idr], _config())
    assert data == AUD + START + PPS + START + sps2 + START + idr


def test_publisher_aud_is_replaced_not_doubled() -> None:
    data, key = build_access_unit([b"\x09\x30", b"\x41\x9a\x02"], _config())
    assert not key
    assert data == AUD + START + b"\x41\x9a\x02"


def test_non_idr_i_frame_is_not_a_keyframe() -> None:
    """An open-GOP I slice (type 1) flagged as keyframe by FLV is still not an IDR."""
    i_slice = b"\x21\x88\x80"  # nal_ref_idc 1, type 1, first_mb 0, slice_type 7 (I)
    data, key = build_access_unit([i_slice], _config())
    assert not key
    assert SPS not in data
    assert is_idr([b"\x06\x00", b"\x25\x88"])  # nal_ref_idc 1, type 5
    assert not is_idr([b"\x06\x00", b"\x41\x9a"])
