"""AV1 from Enhanced RTMP: the AV1CodecConfigurationRecord ("av1C", AV1 Codec ISOBMFF
Binding 2.3) and just enough of the sequence header OBU (AV1 5.5) to know the picture size.

Samples travel as low-overhead OBUs, as in MP4, and go into fMP4 segments as they came.
"""

from __future__ import annotations

from livechannel.media.bits import BitReader
from livechannel.media.errors import MediaError
from livechannel.media.frames import VideoConfig

AV1C_HEADER_BYTES = 4  # marker/version, profile/level, tier/depth/chroma, delay (2.3.3)
OBU_SEQUENCE_HEADER = 1
MAX_LEB128_BYTES = 8  # AV1 4.10.5: leb128() reads at most 8 bytes


def _leb128(data: bytes, pos: int) -> tuple[int, int]:
    value = 0
    for i in range(MAX_LEB128_BYTES):
        if pos >= len(data):
            raise MediaError("AV1 OBU size truncated")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << (7 * i)
        if not byte & 0x80:
            return value, pos
    raise MediaError("AV1 OBU size longer than 8 bytes")


def sequence_header(obus: bytes) -> bytes | None:
    """The payload of the first sequence header OBU in `obus`, if any."""
    pos = 0
    while pos < len(obus):
        header = obus[pos]
        kind, has_extension, has_size = (header >> 3) & 0x0F, header & 0x04, header & 0x02
        pos += 2 if has_extension else 1
        if not has_size:
            size = len(obus) - pos
        else:
            size, pos = _leb128(obus, pos)
        if kind == OBU_SEQUENCE_HEADER:
            return obus[pos : pos + size]
        pos += size
    return None


def _uvlc(r: BitReader) -> None:
    zeros = 0
    while not r.flag():
        zeros += 1
        if zeros >= 32:
            return
    r.skip(zeros)


def sequence_picture_size(payload: bytes) -> tuple[int, int]:
    """max_frame_width/height of a sequence header OBU payload (AV1 5.5.1)."""
    r = BitReader(payload)
    r.skip(3)  # seq_profile
    r.skip(1)  # still_picture
    if r.flag():  # reduced_still_picture_header
        r.skip(5)  # seq_level_idx[0]
    else:
        decoder_model_info = False
        buffer_delay_bits = 0
        if r.flag():  # timing_info_present_flag
            r.skip(64)  # num_units_in_display_tick, time_scale
            if r.flag():  # equal_picture_interval
                _uvlc(r)
            decoder_model_info = r.flag()
            if decoder_model_info:
                buffer_delay_bits = r.u(5) + 1
                r.skip(32 + 5 + 5)
        initial_display_delay = r.flag()
        for _ in range(r.u(5) + 1):  # operating_points_cnt_minus_1
            r.skip(12)  # operating_point_idc
            if r.u(5) > 7:  # seq_level_idx
                r.skip(1)  # seq_tier
            if decoder_model_info and r.flag():
                r.skip(2 * buffer_delay_bits + 1)
            if initial_display_delay and r.flag():
                r.skip(4)
    width_bits, height_bits = r.u(4) + 1, r.u(4) + 1
    return r.u(width_bits) + 1, r.u(height_bits) + 1


def parse_av1_config(record: bytes) -> VideoConfig:
    """av1C -> VideoConfig (the record kept for the fMP4 sample entry). The picture size
    comes from the sequence header among its configOBUs; 0 x 0 without one (the first
    keyframe carries it; decoders read it there)."""
    if len(record) < AV1C_HEADER_BYTES or record[0] != 0x81:
        raise MediaError("AV1 codec configuration record truncated or not version 1")
    payload = sequence_header(bytes(record[AV1C_HEADER_BYTES:]))
    width, height = sequence_picture_size(payload) if payload else (0, 0)
    return VideoConfig("AV1", width, height, 0, (), (), bytes(record))
