"""SPS -> picture size: real libx264 SPS bytes, then synthetic ones for every syntax branch."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from livechannel.media.bits import BitReader
from livechannel.media.errors import MediaError
from livechannel.media.sps import parse_sps, unescape_rbsp

from .sps_writer import SpsFields, build_sps, escape_rbsp, expected_size

# Produced by PyAV 18's libx264 (one frame, Annex B, trailing zeros stripped).
REAL_SPS = [
    # (case, width, height, profile_idc, chroma_format_idc, frame_mbs_only, SPS hex)
    ("1280x720 High", 1280, 720, 100, 1, True,
     "6764001facd9405005ba1000000300100000030320f1831960"),
    ("1920x1080 High, cropped from 1088", 1920, 1080, 100, 1, True,
     "67640028acd940780227e584000003000400000300c83c60c658"),
    ("640x360 High, cropped from 368", 640, 360, 100, 1, True,
     "6764001eacd940a02ff961000003000100000300320f162d96"),
    ("320x240 Constrained Baseline (ultrafast)", 320, 240, 66, 1, True,
     "6742c00dda0507e840000003004000000c83c50aa8"),
    ("1024x576 Main", 1024, 576, 77, 1, True,
     "674d401feca020024d080000030008000003019078c18cb0"),
    ("1366x768 High 4:4:4 Predictive, 1-pixel crop units", 1366, 768, 244, 3, True,
     "67f40020919b280ac0c3c5f0800000030080000019078c18cb"),
    ("854x480 High 4:2:2", 854, 480, 122, 2, True,
     "677a001ebcd940d83de6e1000003000100000300320f162d96"),
    ("1920x1080 interlaced (field pairs, crop unit 4 lines)", 1920, 1080, 100, 1, False,
     "67640028acd94078044fdc20000003002000000643e2c5b2c0"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("case", "width", "height", "profile", "chroma", "frame_mbs_only", "sps_hex"), REAL_SPS
)
def test_real_sps(
    case: str,
    width: int,
    height: int,
    profile: int,
    chroma: int,
    frame_mbs_only: bool,
    sps_hex: str,
) -> None:
    info = parse_sps(bytes.fromhex(sps_hex))
    assert (info.width, info.height) == (width, height), case
    assert info.profile_idc == profile
    assert info.chroma_format_idc == chroma
    assert info.frame_mbs_only is frame_mbs_only


def test_emulation_prevention_is_removed() -> None:
    assert unescape_rbsp(bytes.fromhex("0000030000030001")) == bytes.fromhex("000000000001")
    assert unescape_rbsp(bytes.fromhex("00000303")) == bytes.fromhex("000003")
    assert unescape_rbsp(bytes.fromhex("000300")) == bytes.fromhex("000300")


def test_escapes_before_the_size_fields() -> None:
    """Large POC-cycle offsets are long runs of zero bits: 00 00 03 escapes appear *before*
    pic_width_in_mbs_minus1, so the size is only right if they are removed first."""
    fields = SpsFields(profile_idc=66, poc_type=1, poc_cycle=[1 << 24])
    sps = build_sps(fields)
    assert sps.count(b"\x00\x00\x03") == 2
    info = parse_sps(sps)
    assert (info.width, info.height) == (1280, 720)


def test_scaling_lists_in_high_profile() -> None:
    fields = SpsFields(
        scaling_lists=[[1, -2, 3], [], [-8], [0] * 16, [5] * 20, [], [2] * 64, [-1, 7]],
        width_mbs=120,
        height_map_units=68,
        crop=(0, 0, 0, 4),
    )
    info = parse_sps(build_sps(fields))
    assert (info.width, info.height) == (1920, 1080)


def test_poc_type_1_cycle() -> None:
    fields = SpsFields(poc_type=1, poc_cycle=[1, -2, 3, 100], width_mbs=40, height_map_units=30)
    assert (parse_sps(build_sps(fields)).width, parse_sps(build_sps(fields)).height) == (640, 480)


def test_separate_colour_planes_crop_in_luma_units() -> None:
    fields = SpsFields(
        profile_idc=244, chroma_format_idc=3, separate_colour_plane=True, crop=(1, 2, 3, 4)
    )
    info = parse_sps(build_sps(fields))
    assert (info.width, info.height) == (1280 - 3, 720 - 7)


@pytest.mark.parametrize(
    "fields",
    [
        SpsFields(width_mbs=2000),  # beyond level 6.2
        SpsFields(crop=(400, 400, 0, 0)),  # crops everything away
        SpsFields(profile_idc=100, chroma_format_idc=4),
        SpsFields(poc_type=3),
        SpsFields(poc_type=1, poc_cycle=[0] * 256),
    ],
)
def test_invalid_sps(fields: SpsFields) -> None:
    with pytest.raises(MediaError):
        parse_sps(build_sps(fields))


def test_not_an_sps() -> None:
    with pytest.raises(MediaError):
        parse_sps(b"\x68\xee\x3c\x80")  # a PPS
    with pytest.raises(MediaError):
        parse_sps(b"")
    with pytest.raises(MediaError):
        parse_sps(b"\x67\x64\x00")  # truncated


HIGH = (100, 110, 122, 244)


@st.composite
def sps_fields(draw: st.DrawFn) -> SpsFields:
    profile = draw(st.sampled_from([66, 77, 88, *HIGH]))
    chroma = draw(st.integers(0, 3)) if profile in HIGH else 1
    frame_mbs_only = draw(st.booleans())
    width_mbs = draw(st.integers(2, 300))  # >= 32 px: more than any crop drawn below
    height_units = draw(st.integers(2, 150 if frame_mbs_only else 75))
    fields = SpsFields(
        profile_idc=profile,
        chroma_format_idc=chroma,
        separate_colour_plane=chroma == 3 and draw(st.booleans()),
        scaling_lists=draw(
            st.none() | st.lists(st.lists(st.integers(-128, 127), max_size=70), max_size=12)
        )
        if profile in HIGH
        else None,
        poc_type=draw(st.integers(0, 2)),
        poc_cycle=draw(st.lists(st.integers(-1000, 1000), max_size=8)),
        width_mbs=width_mbs,
        height_map_units=height_units,
        frame_mbs_only=frame_mbs_only,
        vui_bytes=draw(st.binary(max_size=8)),
    )
    if draw(st.booleans()):
        crop = (draw(st.integers(0, 7)), draw(st.integers(0, 7)), draw(st.integers(0, 3)),
                draw(st.integers(0, 3)))  # fmt: skip
        fields.crop = crop
    return fields


@settings(max_examples=400, deadline=None)
@given(sps_fields())
def test_synthetic_sps_round_trip(fields: SpsFields) -> None:
    info = parse_sps(build_sps(fields))
    assert (info.width, info.height) == expected_size(fields)
    assert info.frame_mbs_only is fields.frame_mbs_only


@given(st.binary(max_size=64))
def test_escape_round_trip(rbsp: bytes) -> None:
    if rbsp.endswith(b"\x00"):
        rbsp += b"\x80"  # an RBSP ends with its stop bit, never a zero byte
    assert unescape_rbsp(escape_rbsp(rbsp)) == rbsp


def test_bit_reader_exp_golomb_table() -> None:
    # ue: 1 -> 0, 010 -> 1, 011 -> 2, 00100 -> 3; se: 010 -> 1, 011 -> -1, 00100 -> 2
    r = BitReader(bytes([0b10100110, 0b01000000]))
    assert [r.ue(), r.ue(), r.ue(), r.ue()] == [0, 1, 2, 3]
    r = BitReader(bytes([0b01001100, 0b10000000]))
    assert [r.se(), r.se(), r.se()] == [1, -1, 2]
    assert r.bits_left == 5


def test_bit_reader_overruns() -> None:
    r = BitReader(b"\x00\x00\x00\x00\x01")
    with pytest.raises(MediaError):
        r.ue()  # 39 leading zeros: longer than any 32-bit code
    r = BitReader(b"\x00")
    with pytest.raises(MediaError):
        r.ue()
    r = BitReader(b"\xff")
    assert r.u(8) == 0xFF
    with pytest.raises(MediaError):
        r.u(1)
    with pytest.raises(MediaError):
        r.skip(1)
