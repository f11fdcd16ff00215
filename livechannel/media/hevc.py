"""HEVC (H.265) from Enhanced RTMP: the HEVCDecoderConfigurationRecord (ISO 14496-15 8.3.3,
"hvcC") and just enough of the SPS (ITU-T H.265 7.3.2.2) to know the picture size.

Samples travel length-prefixed, as in MP4, and go into fMP4 segments as they came. A frame
is a keyframe when it holds an IRAP picture (NAL types 16..23: BLA, IDR, CRA; H.265 7.4.2.2),
where a segment may start (RFC 8216bis 3 asks segments to start at one).
"""

from __future__ import annotations

from livechannel.media.bits import BitReader
from livechannel.media.errors import MediaError
from livechannel.media.frames import VideoConfig
from livechannel.media.h264 import split_avcc
from livechannel.media.sps import unescape_rbsp

HVCC_HEADER_BYTES = 23  # the fixed part before the NAL unit arrays (14496-15 8.3.3.1.2)
NAL_TYPE_SPS = 33
IRAP_NAL_TYPES = range(16, 24)
# chroma_format_idc -> (SubWidthC, SubHeightC), H.265 Table 6-1.
CHROMA_SUBSAMPLING = {0: (1, 1), 1: (2, 2), 2: (2, 1), 3: (1, 1)}
MAX_SUB_LAYERS = 7  # sps_max_sub_layers_minus1 is 0..6


def nal_type(nal: bytes | memoryview) -> int:
    return (nal[0] >> 1) & 0x3F


def parse_hevc_decoder_config(record: bytes) -> VideoConfig:
    """hvcC -> VideoConfig (the record itself kept for the fMP4 sample entry)."""
    if len(record) < HVCC_HEADER_BYTES or record[0] != 1:
        raise MediaError("HEVC decoder configuration record truncated or not version 1")
    nal_length_size = (record[21] & 0x03) + 1
    pos, arrays = HVCC_HEADER_BYTES, record[22]
    sps: list[bytes] = []
    for _ in range(arrays):
        if pos + 3 > len(record):
            raise MediaError("HEVC decoder configuration truncated in its NAL arrays")
        kind, count = record[pos] & 0x3F, int.from_bytes(record[pos + 1 : pos + 3], "big")
        pos += 3
        for _ in range(count):
            if pos + 2 > len(record):
                raise MediaError("HEVC decoder configuration truncated in a NAL length")
            size = int.from_bytes(record[pos : pos + 2], "big")
            nal = bytes(record[pos + 2 : pos + 2 + size])
            if len(nal) != size or not size:
                raise MediaError("HEVC decoder configuration truncated in a NAL unit")
            if kind == NAL_TYPE_SPS:
                sps.append(nal)
            pos += 2 + size
    if not sps:
        raise MediaError("HEVC decoder configuration holds no SPS")
    width, height = sps_picture_size(sps[0])
    return VideoConfig("HEVC", width, height, nal_length_size, tuple(sps), (), bytes(record))


def _skip_profile_tier_level(r: BitReader, max_sub_layers_minus1: int) -> None:
    """profile_tier_level(1, max_sub_layers_minus1) of H.265 7.3.3."""
    r.skip(96)  # general profile space..general_level_idc: 2+1+5+32+4+43+1+8 bits
    present = [(r.flag(), r.flag()) for _ in range(max_sub_layers_minus1)]
    if max_sub_layers_minus1 > 0:
        r.skip(2 * (8 - max_sub_layers_minus1))  # reserved_zero_2bits
    for profile, level in present:
        r.skip((88 if profile else 0) + (8 if level else 0))


def sps_picture_size(nal: bytes) -> tuple[int, int]:
    """(width, height) with the conformance window applied (H.265 7.4.3.2.1)."""
    if len(nal) < 3 or nal_type(nal) != NAL_TYPE_SPS:
        raise MediaError("not an HEVC SPS NAL unit")
    r = BitReader(unescape_rbsp(nal[2:]))  # after the 2-byte NAL unit header
    r.skip(4)  # sps_video_parameter_set_id
    max_sub_layers_minus1 = r.u(3)
    if max_sub_layers_minus1 >= MAX_SUB_LAYERS:
        raise MediaError("HEVC SPS with more than 7 sub-layers")
    r.skip(1)  # sps_temporal_id_nesting_flag
    _skip_profile_tier_level(r, max_sub_layers_minus1)
    r.ue()  # sps_seq_parameter_set_id
    chroma_format_idc = r.ue()
    if chroma_format_idc == 3 and r.flag():  # separate_colour_plane_flag
        chroma_format_idc = 0
    sub_w, sub_h = CHROMA_SUBSAMPLING.get(chroma_format_idc, (1, 1))
    width, height = r.ue(), r.ue()
    if r.flag():  # conformance_window_flag
        left, right, top, bottom = r.ue(), r.ue(), r.ue(), r.ue()
        width -= sub_w * (left + right)
        height -= sub_h * (top + bottom)
    if width <= 0 or height <= 0:
        raise MediaError("HEVC SPS with an empty picture")
    return width, height


def is_irap(sample: bytes, nal_length_size: int) -> bool:
    """Does this length-prefixed access unit hold an IRAP picture?"""
    return any(nal_type(nal) in IRAP_NAL_TYPES for nal in split_avcc(sample, nal_length_size))
