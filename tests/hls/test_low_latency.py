"""The LL-HLS playlist in memory (hls/low_latency.py), driven without a network: what it
lists, what a blocking reload waits for, when it refuses, delta updates, and the memory it
keeps; every playlist it renders goes through our RFC 8216bis validator."""

from __future__ import annotations

import asyncio

import pytest

from livechannel.hls.live_endpoint import LiveEndpoint
from livechannel.hls.low_latency import MAX_PART_BYTES_PER_PUSH, BadReload, LowLatencyPlaylist
from tests.support.ll_hls_validator import (
    assert_answers_blocking_reload,
    assert_delta_matches,
    validate_ll_playlist,
)

PART_MS, SEGMENT_MS = 500, 2000


def grow(state: LowLatencyPlaylist, segments: int, part_bytes: int = 1000) -> None:
    """Add whole segments of four 500 ms parts (the first independent)."""
    for _ in range(segments):
        seq = state.last_msn() + 1 if state.open is None else state.open.seq
        start = 1_800_000_000_000 + seq * SEGMENT_MS
        state.open_segment(seq, f"{start}.m4s", start, False, "init.mp4")
        chunks = []
        for i in range(SEGMENT_MS // PART_MS):
            chunk = [bytes(part_bytes)]
            chunks += chunk
            state.add_part(PART_MS, i == 0, chunk, part_bytes)
        state.close_segment(SEGMENT_MS, chunks)


def new_state(frag_count: int = 3) -> LowLatencyPlaylist:
    return LowLatencyPlaylist(push_id=7, part_target_ms=PART_MS, frag_count=frag_count,
                              target_s=4)  # fmt: skip


def test_playlist_lists_recent_parts_and_hints_the_next() -> None:
    state = new_state()
    grow(state, 5)
    state.open_segment(5, "x.m4s", 1_800_000_010_000, False, "init.mp4")
    state.add_part(PART_MS, True, [b"p"], 1)
    text = state.render()
    ll = validate_ll_playlist(text)
    assert ll.media_sequence == 2 and ll.last_msn() == 4
    assert ll.segments[-1].uri is None and len(ll.segments[-1].parts) == 1
    assert ll.preload_part == "p7-21.m4s"
    assert "#EXT-X-PROGRAM-DATE-TIME:2027-01-15T08:00:10.000Z" in text
    # Parts of segments ending more than six part targets (3 s) before the live edge are
    # gone, from the playlist and from memory: the last two closed segments keep theirs.
    assert [len(s.parts) for s in ll.complete] == [0, 4, 4]
    assert set(state.parts) == set(range(12, 21))
    assert_answers_blocking_reload(ll, 5, 0)
    with pytest.raises(AssertionError):
        assert_answers_blocking_reload(ll, 5, 1)


def test_blocking_reload_conditions_and_refusals() -> None:
    state = new_state()
    grow(state, 2)
    assert state.satisfied(1, None) and not state.satisfied(2, None)
    state.open_segment(2, "s2.m4s", 1_800_000_004_000, False, "init.mp4")
    assert not state.satisfied(2, 0)
    state.add_part(PART_MS, True, [b"p"], 1)
    assert state.satisfied(2, 0) and not state.satisfied(2, 1)
    state.check(3, None)  # last complete is 1: 1 + 2 is the furthest one may ask
    with pytest.raises(BadReload):
        state.check(4, None)
    state.check(2, 3)  # one part out, the advance part limit is three
    with pytest.raises(BadReload):
        state.check(2, 4)
    with pytest.raises(BadReload):
        state.check(None, 1)


def test_delta_update_skips_what_is_older_than_can_skip_until() -> None:
    state = new_state(frag_count=20)  # 40 s window, target 4 s: skip boundary 24 s
    grow(state, 20)
    full = validate_ll_playlist(state.render())
    assert full.can_skip_until_s == 24.0
    delta = validate_ll_playlist(state.render(skip=True))
    assert delta.skipped == 8
    assert_delta_matches(delta, full)
    short = new_state()  # a 6 s window has nothing to skip: not offered
    grow(short, 3)
    assert "CAN-SKIP-UNTIL" not in short.render() and "SKIP" not in short.render(skip=True)


def test_part_memory_is_bounded() -> None:
    state = new_state()
    grow(state, 3, part_bytes=MAX_PART_BYTES_PER_PUSH // 5)
    assert state.part_bytes <= MAX_PART_BYTES_PER_PUSH
    validate_ll_playlist(state.render())


async def test_waiters_wake_when_the_part_arrives() -> None:
    state = new_state()
    grow(state, 1)
    endpoint = LiveEndpoint(state, "cam", "playlist.m3u8")
    waiting = asyncio.ensure_future(endpoint.playlist(1, 0, False))
    hinted = asyncio.ensure_future(endpoint.part(4))
    await asyncio.sleep(0.05)
    assert not waiting.done() and not hinted.done()
    state.open_segment(1, "s1.m4s", 1_800_000_002_000, False, "init.mp4")
    state.add_part(PART_MS, True, [b"part"], 4)
    endpoint.changed()
    text = await asyncio.wait_for(waiting, 1)
    part = await asyncio.wait_for(hinted, 1)
    assert text is not None and part is not None and part.chunks == [b"part"]
    assert_answers_blocking_reload(validate_ll_playlist(text), 1, 0)


async def test_the_end_of_the_push_releases_waiters_without_endlist() -> None:
    """A republish within the grace period continues the playlist, so the last LL answer
    must not say ENDLIST; waiting players are answered at once, with no hint."""
    state = new_state()
    grow(state, 2)
    endpoint = LiveEndpoint(state, "cam", "playlist.m3u8")
    waiting = asyncio.ensure_future(endpoint.playlist(2, 1, False))
    hinted = asyncio.ensure_future(endpoint.part(state.next_part))
    await asyncio.sleep(0.05)
    state.finished = True
    endpoint.changed()
    text = await asyncio.wait_for(waiting, 1)
    assert text is not None and "#EXT-X-ENDLIST" not in text and "PRELOAD-HINT" not in text
    validate_ll_playlist(text, live=False)
    assert await asyncio.wait_for(hinted, 1) is None


async def test_a_waiter_runs_in_the_loop_turn_after_the_part() -> None:
    """The answer to a blocking reload is ready one event-loop turn after the part: with a
    few hundred pushes a turn is a round of socket reads, so every extra turn is latency."""
    state = new_state()
    grow(state, 1)
    endpoint = LiveEndpoint(state, "cam", "playlist.m3u8")
    waiting = asyncio.ensure_future(endpoint.playlist(1, 0, False))
    await asyncio.sleep(0.01)
    state.open_segment(1, "s1.m4s", 1_800_000_002_000, False, "init.mp4")
    state.add_part(PART_MS, True, [b"part"], 4)
    endpoint.changed()
    await asyncio.sleep(0)  # one turn: the waiter's wake-up was scheduled before ours
    assert waiting.done()
    assert_answers_blocking_reload(validate_ll_playlist(waiting.result()), 1, 0)


async def test_waiters_that_time_out_or_leave_are_not_kept() -> None:
    state = new_state()
    grow(state, 1)
    endpoint = LiveEndpoint(state, "cam", "playlist.m3u8")
    assert not await endpoint.wait_until(lambda: False, 0.02)
    leaving = asyncio.ensure_future(endpoint.playlist(1, 0, False))
    await asyncio.sleep(0.01)
    assert len(endpoint._waiters) == 1
    leaving.cancel()  # the player went away: aiohttp cancels its handler
    with pytest.raises(asyncio.CancelledError):
        await leaving
    assert not endpoint._waiters
