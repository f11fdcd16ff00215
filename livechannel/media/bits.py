"""MSB-first bit reader with Exp-Golomb codes (H.264 7.2 and 9.1), for parameter sets.

Works on RBSP bytes (emulation prevention already removed, see `h264.unescape_rbsp`).
"""

from __future__ import annotations

from livechannel.media.errors import MediaError

# ue(v) codes a 32-bit value with at most 31 leading zeros (9.1); more means corrupt data.
MAX_EXP_GOLOMB_LEADING_ZEROS = 31


class BitReader:
    __slots__ = ("_data", "_pos", "_size_bits")

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0
        self._size_bits = len(data) * 8

    @property
    def bits_left(self) -> int:
        return self._size_bits - self._pos

    def u(self, n: int) -> int:
        """Read an n-bit unsigned integer, u(n)."""
        if n == 0:
            return 0
        end = self._pos + n
        if end > self._size_bits:
            raise MediaError(f"bitstream overrun: {n} bits wanted, {self.bits_left} left")
        first = self._pos >> 3
        last = (end - 1) >> 3
        chunk = int.from_bytes(self._data[first : last + 1], "big")
        self._pos = end
        return (chunk >> ((last + 1) * 8 - end)) & ((1 << n) - 1)

    def flag(self) -> bool:
        return self.u(1) == 1

    def skip(self, n: int) -> None:
        if self._pos + n > self._size_bits:
            raise MediaError(f"bitstream overrun: skip {n} bits, {self.bits_left} left")
        self._pos += n

    def ue(self) -> int:
        """Unsigned Exp-Golomb, ue(v)."""
        zeros = 0
        while self.u(1) == 0:
            zeros += 1
            if zeros > MAX_EXP_GOLOMB_LEADING_ZEROS:
                raise MediaError("Exp-Golomb code longer than 32 bits")
        return (1 << zeros) - 1 + self.u(zeros)

    def se(self) -> int:
        """Signed Exp-Golomb, se(v): 1, -1, 2, -2, ... (9.1.1)."""
        k = self.ue()
        return (k + 1) >> 1 if k & 1 else -(k >> 1)
