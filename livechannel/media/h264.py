"""H.264 in FLV (ISO 14496-15 "avcC" framing) to H.264 in MPEG-TS (Annex B byte stream).

IDR detection: the FLV frame type (1 = keyframe) is what the publisher *says*; the NAL types
are what the decoder will *see*. Encoders flag open-GOP I frames and intra-refresh recovery
points as keyframes, and a segment starting there does not decode alone. So a frame is a
keyframe here exactly when its access unit holds an IDR slice (NAL type 5), whatever the FLV
flag says; the flag is ignored.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

from livechannel.media.errors import MediaError
from livechannel.media.frames import VideoConfig
from livechannel.media.sps import parse_sps

NAL_TYPE_SLICE = 1
NAL_TYPE_IDR = 5
NAL_TYPE_SEI = 6
NAL_TYPE_SPS = 7
NAL_TYPE_PPS = 8
NAL_TYPE_AUD = 9
START_CODE = b"\x00\x00\x00\x01"
# Access unit delimiter with primary_pic_type 7 ("any slice type"), then the stop bit (7.3.2.4).
# HLS (RFC 8216 bis, Apple's authoring spec) and many TS demuxers expect one before each AU.
AUD_NAL = b"\x09\xf0"
AVCC_VERSION = 1  # configurationVersion of AVCDecoderConfigurationRecord (14496-15 5.3.3.1)
AVCC_HEADER_BYTES = 6  # version, profile, compatibility, level, lengthSize, numOfSPS
# NAL length fields of 1, 2 or 4 bytes are valid (lengthSizeMinusOne 0, 1, 3); 3 bytes is
# tolerated because it is unambiguous and some muxers emit it.
NAL_LENGTH_SIZES = (1, 2, 3, 4)


def parse_avc_decoder_config(data: bytes) -> VideoConfig:
    """AVCDecoderConfigurationRecord (the AVC sequence header) -> VideoConfig.

    Width and height come from the first SPS; at least one SPS is required, PPS may be
    absent (then it must come in-band)."""
    if len(data) < AVCC_HEADER_BYTES:
        raise MediaError(f"AVC decoder configuration of {len(data)} bytes is truncated")
    if data[0] != AVCC_VERSION:
        raise MediaError(f"AVC decoder configuration version {data[0]} is not 1")
    nal_length_size = (data[4] & 0x03) + 1
    pos = 5
    sps, pos = _read_parameter_sets(data, pos + 1, data[pos] & 0x1F)
    if pos >= len(data):
        raise MediaError("AVC decoder configuration ends before its PPS count")
    pps, _ = _read_parameter_sets(data, pos + 1, data[pos])
    # Trailing bytes (the High-profile chroma/bit-depth extension) repeat what the SPS says.
    if not sps:
        raise MediaError("AVC decoder configuration holds no SPS")
    info = parse_sps(sps[0])
    return VideoConfig(
        codec="H264",
        width=info.width,
        height=info.height,
        nal_length_size=nal_length_size,
        sps=tuple(sps),
        pps=tuple(pps),
    )


def _read_parameter_sets(data: bytes, pos: int, count: int) -> tuple[list[bytes], int]:
    sets = []
    for _ in range(count):
        if pos + 2 > len(data):
            raise MediaError("AVC decoder configuration truncated in a parameter set length")
        size = int.from_bytes(data[pos : pos + 2], "big")
        pos += 2
        if size == 0 or pos + size > len(data):
            raise MediaError("AVC decoder configuration truncated in a parameter set")
        sets.append(bytes(data[pos : pos + size]))
        pos += size
    return sets, pos


# NAL units are slices of their message: bytes, or memoryviews on the hot path (no copies).
Nal = bytes | memoryview


def split_avcc(data: Nal, nal_length_size: int) -> list[Nal]:
    """Length-prefixed NAL units -> list of NAL units (empty ones skipped), each a slice of
    `data` (so a memoryview in gives views out)."""
    if nal_length_size not in NAL_LENGTH_SIZES:
        raise MediaError(f"NAL length size {nal_length_size} is not 1, 2, 3 or 4")
    nals: list[Nal] = []
    pos, end = 0, len(data)
    while pos < end:
        if pos + nal_length_size > end:
            raise MediaError("NAL unit length field truncated")
        size = int.from_bytes(data[pos : pos + nal_length_size], "big")
        pos += nal_length_size
        if pos + size > end:
            raise MediaError(f"NAL unit of {size} bytes overruns its {end - pos}-byte message")
        if size:
            nals.append(data[pos : pos + size])
        pos += size
    return nals


def avcc_to_annexb(data: bytes, nal_length_size: int) -> bytes:
    """Length-prefixed NAL units -> the same NAL units behind 4-byte start codes."""
    nals = split_avcc(data, nal_length_size)
    return START_CODE + START_CODE.join(nals) if nals else b""


def is_idr(nals: list[Nal]) -> bool:
    return any(nal[0] & 0x1F == NAL_TYPE_IDR for nal in nals)


def build_access_unit(nals: list[Nal], config: VideoConfig) -> tuple[bytes, bool]:
    """One FLV video frame's NAL units -> (Annex B access unit, is IDR).

    The result starts with our own AUD (the publisher's AUDs are dropped so there is exactly
    one, first, as 7.4.1.2.3 requires). An IDR access unit that lacks SPS or PPS gets the
    ones from the sequence header right after the AUD, so every segment decodes on its own.
    """
    types = [nal[0] & 0x1F for nal in nals]
    idr = NAL_TYPE_IDR in types
    parts: list[Nal] = [b"", AUD_NAL]  # b"" first: the join puts a start code before the AUD
    if idr:
        if NAL_TYPE_SPS not in types:
            parts.extend(config.sps)
        if NAL_TYPE_PPS not in types:
            parts.extend(config.pps)
    if NAL_TYPE_AUD in types:
        parts.extend(nal for nal, t in zip(nals, types, strict=True) if t != NAL_TYPE_AUD)
    else:
        parts.extend(nals)
    return START_CODE.join(parts), idr


def _u24_at(data: Nal, pos: int) -> tuple[int]:
    return (int.from_bytes(data[pos : pos + 3], "big"),)


# A NAL unit's length field by its size, read in place: (length,). A slice per field (a
# memoryview on the hot path) was an object made and freed per NAL unit.
_NAL_LENGTH_AT: dict[int, Callable[[Nal, int], tuple[int]]] = {
    1: struct.Struct(">B").unpack_from,
    2: struct.Struct(">H").unpack_from,
    3: _u24_at,
    4: struct.Struct(">I").unpack_from,
}


def avcc_access_unit(
    data: Nal, nal_length_size: int, config: VideoConfig, *, start: int = 0
) -> tuple[bytes, bool]:
    """`build_access_unit(split_avcc(data[start:], nal_length_size), config)` in one pass,
    with the same errors; (b"", False) when `data` holds no NAL unit from `start` on. What
    the demuxer uses: it runs once per video message, where the two calls, the list of
    types and its scans cost 1.6 % of the whole path (docs/performance.md); the two-call
    form is the readable reference tests/media/test_fast_paths.py holds it to."""
    length_at = _NAL_LENGTH_AT.get(nal_length_size)
    if length_at is None:
        raise MediaError(f"NAL length size {nal_length_size} is not 1, 2, 3 or 4")
    parts: list[Nal] = [b"", AUD_NAL]  # as in build_access_unit; the publisher's AUDs dropped
    types = 0  # bit t set: a NAL unit of type t was seen
    pos, end = start, len(data)
    while pos < end:
        if pos + nal_length_size > end:
            raise MediaError("NAL unit length field truncated")
        (size,) = length_at(data, pos)
        pos += nal_length_size
        if pos + size > end:
            raise MediaError(f"NAL unit of {size} bytes overruns its {end - pos}-byte message")
        if size:
            nal_type = data[pos] & 0x1F
            types |= 1 << nal_type
            if nal_type != NAL_TYPE_AUD:
                parts.append(data[pos : pos + size])
        pos += size
    if not types:
        return b"", False
    idr = bool(types & 1 << NAL_TYPE_IDR)
    if idr:  # the sequence header's SPS/PPS the frame lacks, after the AUD
        missing: list[Nal] = []
        if not types & 1 << NAL_TYPE_SPS:
            missing += config.sps
        if not types & 1 << NAL_TYPE_PPS:
            missing += config.pps
        parts[2:2] = missing
    return START_CODE.join(parts), idr
