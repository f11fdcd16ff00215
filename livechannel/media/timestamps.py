"""The one place where clocks wrap around.

RTMP timestamps are 32-bit milliseconds (RTMP 1.0 5.3.1.2: they wrap after ~49.7 days, and
publishers may start anywhere); MPEG-TS PTS/DTS/PCR base are 33-bit 90 kHz counters
(13818-1 2.4.3.7: they wrap after ~26.5 hours). Everything between the two is plain int ms.
"""

from __future__ import annotations

RTMP_TIMESTAMP_BITS = 32  # RTMP message timestamps (RTMP 1.0 5.3.1.2)
TS_CLOCK_BITS = 33  # PTS, DTS and PCR base (13818-1 2.4.3.7)
TS_CLOCK_HZ = 90_000
TS_CLOCK_MASK = (1 << TS_CLOCK_BITS) - 1
# Added to every TS time: B-frame reordering makes PTS lead DTS, players dislike negative or
# just-wrapped values at the start, and the PCR is placed before the DTS (see mpegts.py).
# 1.4 s matches what libavformat's mpegts muxer uses, so outputs look familiar to players.
TS_TIME_OFFSET_90K = 126_000


class Unwrapper:
    """Turns wrapping `bits`-bit timestamps into a monotonic-in-wrap int timeline.

    The first value is taken as is. After that, each value is read as the nearest one to the
    previous: a step forward of less than half the range is forward; a step backward of more
    than half the range is a wrap (forward); a smaller backward step stays backward, so the
    segmenter can see the publisher's clock jumping back.
    """

    __slots__ = ("_half", "_last", "_modulus", "_raw")

    def __init__(self, bits: int = RTMP_TIMESTAMP_BITS) -> None:
        self._modulus = 1 << bits
        self._half = 1 << (bits - 1)
        self._raw: int | None = None
        self._last = 0

    def unwrap(self, timestamp: int) -> int:
        timestamp %= self._modulus
        if self._raw is None:
            self._last = timestamp
        else:
            step = (timestamp - self._raw) % self._modulus
            self._last += step - self._modulus if step >= self._half else step
        self._raw = timestamp
        return self._last


def ms_to_90k(time_ms: int) -> int:
    """Milliseconds -> 90 kHz ticks, exact and unbounded (no offset, no wrap)."""
    return time_ms * (TS_CLOCK_HZ // 1000)


def ts_clock_90k(time_ms: int) -> int:
    """Unwrapped ms -> the 33-bit value written into PTS/DTS/PCR fields."""
    return (time_ms * (TS_CLOCK_HZ // 1000) + TS_TIME_OFFSET_90K) & TS_CLOCK_MASK


def ts_diff_90k(later_90k: int, earlier_90k: int) -> int:
    """Signed distance between two 33-bit TS times, the short way around the wrap."""
    step = (later_90k - earlier_90k) & TS_CLOCK_MASK
    return step - (1 << TS_CLOCK_BITS) if step >= 1 << (TS_CLOCK_BITS - 1) else step
