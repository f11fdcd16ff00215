"""H.264 sequence parameter set: just enough of 7.3.2.1.1 to know the picture size.

Covers the High profiles (chroma_format_idc, bit depths, scaling lists), both
pic_order_cnt types with syntax, field coding (frame_mbs_only_flag = 0) and frame cropping
(7.4.2.1.1: CropUnitX/CropUnitY), which is how 1080p is coded as 1088 lines.
"""

from __future__ import annotations

from dataclasses import dataclass

from livechannel.media.bits import BitReader
from livechannel.media.errors import MediaError

NAL_TYPE_SPS = 7
# Profiles whose SPS carries chroma_format_idc and friends (7.3.2.1.1, the `if` on profile_idc).
HIGH_PROFILES = frozenset({100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135})
# num_ref_frames_in_pic_order_cnt_cycle is 0..255 (7.4.2.1.1).
MAX_POC_CYCLE_FRAMES = 255
# Level 6.2 allows MaxFS = 139264 macroblocks, so a side is at most sqrt(8 * MaxFS) = 1055 MBs
# (A.3.1 f, g); anything larger is a corrupt SPS, not a real picture.
MAX_SIDE_MBS = 1055
# chroma_format_idc -> (SubWidthC, SubHeightC), Table 6-1; 0 is monochrome.
CHROMA_SUBSAMPLING = {0: (1, 1), 1: (2, 2), 2: (2, 1), 3: (1, 1)}


@dataclass(frozen=True, slots=True)
class SpsInfo:
    profile_idc: int
    level_idc: int
    chroma_format_idc: int
    frame_mbs_only: bool
    width: int  # display size, cropping applied
    height: int


def unescape_rbsp(nal: bytes) -> bytes:
    """Remove emulation_prevention_three_byte (7.4.1): every 00 00 03 becomes 00 00.

    bytes.replace scans left to right without overlap, which is exactly the rule: the zero
    count restarts after each removed 03."""
    return nal.replace(b"\x00\x00\x03", b"\x00\x00")


def _skip_scaling_list(r: BitReader, size: int) -> None:
    """scaling_list() of 7.3.2.1.1.1: delta-coded; a next scale of 0 ends the list early."""
    last_scale = next_scale = 8
    for _ in range(size):
        if next_scale != 0:
            next_scale = (last_scale + r.se() + 256) % 256
        if next_scale != 0:
            last_scale = next_scale


def parse_sps(nal: bytes) -> SpsInfo:
    """Parse an SPS NAL unit (with its one-byte NAL header)."""
    if not nal or nal[0] & 0x1F != NAL_TYPE_SPS:
        raise MediaError("not an SPS NAL unit")
    r = BitReader(unescape_rbsp(nal[1:]))
    profile_idc = r.u(8)
    r.skip(8)  # constraint_set flags + reserved_zero_2bits
    level_idc = r.u(8)
    r.ue()  # seq_parameter_set_id
    chroma_format_idc = 1  # inferred for the non-high profiles (7.4.2.1.1)
    separate_colour_plane = False
    if profile_idc in HIGH_PROFILES:
        chroma_format_idc = r.ue()
        if chroma_format_idc > 3:
            raise MediaError(f"chroma_format_idc {chroma_format_idc} out of range")
        if chroma_format_idc == 3:
            separate_colour_plane = r.flag()
        r.ue()  # bit_depth_luma_minus8
        r.ue()  # bit_depth_chroma_minus8
        r.skip(1)  # qpprime_y_zero_transform_bypass_flag
        if r.flag():  # seq_scaling_matrix_present_flag
            for i in range(8 if chroma_format_idc != 3 else 12):
                if r.flag():
                    _skip_scaling_list(r, 16 if i < 6 else 64)
    r.ue()  # log2_max_frame_num_minus4
    poc_type = r.ue()
    if poc_type == 0:
        r.ue()  # log2_max_pic_order_cnt_lsb_minus4
    elif poc_type == 1:
        r.skip(1)  # delta_pic_order_always_zero_flag
        r.se()  # offset_for_non_ref_pic
        r.se()  # offset_for_top_to_bottom_field
        cycle = r.ue()
        if cycle > MAX_POC_CYCLE_FRAMES:
            raise MediaError(f"num_ref_frames_in_pic_order_cnt_cycle {cycle} out of range")
        for _ in range(cycle):
            r.se()
    elif poc_type != 2:
        raise MediaError(f"pic_order_cnt_type {poc_type} out of range")
    r.ue()  # max_num_ref_frames
    r.skip(1)  # gaps_in_frame_num_value_allowed_flag
    width_mbs = r.ue() + 1
    height_map_units = r.ue() + 1
    frame_mbs_only = r.flag()
    if not frame_mbs_only:
        r.skip(1)  # mb_adaptive_frame_field_flag
    r.skip(1)  # direct_8x8_inference_flag
    height_mbs = height_map_units * (1 if frame_mbs_only else 2)  # (7-18)
    if width_mbs > MAX_SIDE_MBS or height_mbs > MAX_SIDE_MBS:
        raise MediaError(f"picture of {width_mbs}x{height_mbs} macroblocks is beyond level 6.2")
    width = width_mbs * 16
    height = height_mbs * 16
    if r.flag():  # frame_cropping_flag
        left, right, top, bottom = r.ue(), r.ue(), r.ue(), r.ue()
        chroma_array_type = 0 if separate_colour_plane else chroma_format_idc
        if chroma_array_type == 0:
            crop_x, crop_y = 1, 1
        else:
            crop_x, crop_y = CHROMA_SUBSAMPLING[chroma_array_type]
        crop_y *= 1 if frame_mbs_only else 2  # (7-20)
        width -= crop_x * (left + right)
        height -= crop_y * (top + bottom)
        if width <= 0 or height <= 0:
            raise MediaError("frame cropping removes the whole picture")
    return SpsInfo(
        profile_idc=profile_idc,
        level_idc=level_idc,
        chroma_format_idc=chroma_format_idc,
        frame_mbs_only=frame_mbs_only,
        width=width,
        height=height,
    )
