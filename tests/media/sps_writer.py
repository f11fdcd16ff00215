"""Builds synthetic SPS NAL units (7.3.2.1.1) for tests: fields the real encoders we have
never emit (scaling lists in the SPS, POC type 1, separate colour planes, odd crops)."""

from __future__ import annotations

from dataclasses import dataclass, field


class BitWriter:
    def __init__(self) -> None:
        self.bits: list[int] = []

    def u(self, n: int, value: int) -> None:
        self.bits.extend((value >> (n - 1 - i)) & 1 for i in range(n))

    def ue(self, value: int) -> None:
        code = value + 1
        self.u(code.bit_length() - 1, 0)
        self.u(code.bit_length(), code)

    def se(self, value: int) -> None:
        self.ue(2 * value - 1 if value > 0 else -2 * value)

    def rbsp(self) -> bytes:
        bits = [*self.bits, 1]  # rbsp_stop_one_bit, then zero bits to a byte boundary
        bits += [0] * (-len(bits) % 8)
        return bytes(int("".join(map(str, bits[i : i + 8])), 2) for i in range(0, len(bits), 8))


def escape_rbsp(rbsp: bytes) -> bytes:
    """Insert emulation_prevention_three_byte where 7.4.1 requires it."""
    out = bytearray()
    zeros = 0
    for byte in rbsp:
        if zeros >= 2 and byte <= 3:
            out.append(3)
            zeros = 0
        out.append(byte)
        zeros = zeros + 1 if byte == 0 else 0
    return bytes(out)


@dataclass
class SpsFields:
    profile_idc: int = 100
    level_idc: int = 31
    chroma_format_idc: int = 1
    separate_colour_plane: bool = False
    scaling_lists: list[list[int]] | None = None  # deltas per present list; None = absent
    poc_type: int = 0
    poc_cycle: list[int] = field(default_factory=list)
    width_mbs: int = 80
    height_map_units: int = 45
    frame_mbs_only: bool = True
    crop: tuple[int, int, int, int] | None = None
    vui_bytes: bytes = b""  # anything after the crop: the parser must not care


def build_sps(f: SpsFields) -> bytes:
    w = BitWriter()
    w.u(8, f.profile_idc)
    w.u(8, 0)
    w.u(8, f.level_idc)
    w.ue(0)
    if f.profile_idc in (100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135):
        w.ue(f.chroma_format_idc)
        if f.chroma_format_idc == 3:
            w.u(1, int(f.separate_colour_plane))
        w.ue(0)
        w.ue(0)
        w.u(1, 0)
        w.u(1, int(f.scaling_lists is not None))
        if f.scaling_lists is not None:
            count = 12 if f.chroma_format_idc == 3 else 8
            for i in range(count):
                deltas = f.scaling_lists[i] if i < len(f.scaling_lists) else []
                w.u(1, int(bool(deltas)))
                if deltas:
                    _write_scaling_list(w, deltas, 16 if i < 6 else 64)
    w.ue(0)  # log2_max_frame_num_minus4
    w.ue(f.poc_type)
    if f.poc_type == 0:
        w.ue(2)
    elif f.poc_type == 1:
        w.u(1, 0)
        w.se(-3)
        w.se(5)
        w.ue(len(f.poc_cycle))
        for offset in f.poc_cycle:
            w.se(offset)
    w.ue(4)  # max_num_ref_frames
    w.u(1, 0)
    w.ue(f.width_mbs - 1)
    w.ue(f.height_map_units - 1)
    w.u(1, int(f.frame_mbs_only))
    if not f.frame_mbs_only:
        w.u(1, 1)
    w.u(1, 1)
    w.u(1, int(f.crop is not None))
    if f.crop is not None:
        for value in f.crop:
            w.ue(value)
    w.u(1, 0)  # vui_parameters_present_flag
    for byte in f.vui_bytes:
        w.u(8, byte)
    return b"\x67" + escape_rbsp(w.rbsp())


def _write_scaling_list(w: BitWriter, deltas: list[int], size: int) -> None:
    """Write deltas until the list is full or a delta makes next_scale 0 (ends the list)."""
    last = 8
    for delta in deltas[:size]:
        w.se(delta)
        nxt = (last + delta + 256) % 256
        if nxt == 0:
            return
        last = nxt
    for _ in range(size - min(len(deltas), size)):
        w.se(0)  # keep the remaining entries equal to the last one


def expected_size(f: SpsFields) -> tuple[int, int]:
    width = f.width_mbs * 16
    height = f.height_map_units * 16 * (1 if f.frame_mbs_only else 2)
    if f.crop is not None:
        chroma = 0 if f.separate_colour_plane else f.chroma_format_idc
        sub_w, sub_h = {0: (1, 1), 1: (2, 2), 2: (2, 1), 3: (1, 1)}[chroma]
        sub_h *= 1 if f.frame_mbs_only else 2
        left, right, top, bottom = f.crop
        width -= sub_w * (left + right)
        height -= sub_h * (top + bottom)
    return width, height
