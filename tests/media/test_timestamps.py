"""RTMP 32-bit unwrapping and the 33-bit TS clock."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from livechannel.media.timestamps import (
    TS_CLOCK_MASK,
    TS_TIME_OFFSET_90K,
    Unwrapper,
    ms_to_90k,
    ts_clock_90k,
    ts_diff_90k,
)

WRAP = 1 << 32


def test_first_value_taken_as_is() -> None:
    assert Unwrapper().unwrap(0) == 0
    assert Unwrapper().unwrap(WRAP - 100) == WRAP - 100  # some publishers start near the top


def test_forward_across_the_wrap() -> None:
    u = Unwrapper()
    values = [WRAP - 40, WRAP - 7, 26, 59, 5000]
    assert [u.unwrap(v) for v in values] == [WRAP - 40, WRAP - 7, WRAP + 26, WRAP + 59, WRAP + 5000]


def test_small_backward_jump_stays_backward() -> None:
    u = Unwrapper()
    assert [u.unwrap(v) for v in (10_000, 10_033, 9_000, 9_033)] == [10_000, 10_033, 9_000, 9_033]


def test_backward_across_the_wrap_after_wrapping() -> None:
    u = Unwrapper()
    assert [u.unwrap(v) for v in (WRAP - 10, 20, WRAP - 5)] == [WRAP - 10, WRAP + 20, WRAP - 5]


def test_backward_jump_of_more_than_half_the_range_is_a_wrap() -> None:
    u = Unwrapper()
    u.unwrap(3_000_000_000)
    assert u.unwrap(100) == WRAP + 100


def test_other_widths() -> None:
    u = Unwrapper(bits=33)
    assert [u.unwrap(v) for v in ((1 << 33) - 1, 1)] == [(1 << 33) - 1, (1 << 33) + 1]


@given(st.integers(0, WRAP - 1), st.lists(st.integers(-(2**31) + 1, 2**31 - 1), max_size=50))
def test_unwrapping_recovers_any_walk(start: int, steps: list[int]) -> None:
    """A timeline that moves less than half the range per step comes back exactly."""
    u = Unwrapper()
    t = start
    assert u.unwrap(t % WRAP) == t
    for step in steps:
        t += step
        assert u.unwrap(t % WRAP) == t


def test_ts_clock() -> None:
    assert ms_to_90k(1000) == 90_000
    assert ms_to_90k(-5) == -450
    assert ts_clock_90k(0) == TS_TIME_OFFSET_90K
    assert ts_clock_90k(-1400) == 0  # the offset absorbs early B-frames and clock slips
    assert ts_clock_90k(-1401) == TS_CLOCK_MASK - 89
    wrap_ms = ((1 << 33) - TS_TIME_OFFSET_90K) // 90
    assert ts_clock_90k(wrap_ms + 10) < ts_clock_90k(wrap_ms - 10)
    assert ts_diff_90k(ts_clock_90k(wrap_ms + 10), ts_clock_90k(wrap_ms - 10)) == 20 * 90
    assert ts_diff_90k(ts_clock_90k(0), ts_clock_90k(40)) == -40 * 90


@given(st.integers(-(2**40), 2**40), st.integers(-(2**32 // 90) + 1, 2**32 // 90 - 1))
def test_ts_diff_is_the_short_way(base_ms: int, delta_ms: int) -> None:
    assert ts_diff_90k(ts_clock_90k(base_ms + delta_ms), ts_clock_90k(base_ms)) == delta_ms * 90
