"""Free heap pages go back to the system (livechannel/ops/memory.py): after a burst of small
blocks is freed around a few survivors, RSS falls once the trim loop has run."""

from __future__ import annotations

import asyncio
import contextlib
import sys

import pytest

from livechannel.ops import memory

BURST_BLOCKS = 16_384  # 4 KiB each: 64 MiB, the shape of a partial-message attack
KEEP_EVERY = 64  # one survivor per 256 KiB keeps the heap's top from shrinking by itself
MIN_RETURNED_BYTES = 24 * 1024 * 1024


def rss_bytes() -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS:"))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="malloc_trim is glibc's")
async def test_the_trim_loop_gives_a_freed_burst_back() -> None:
    burst = [bytes(4096) for _ in range(BURST_BLOCKS)]
    survivors = burst[::KEEP_EVERY]
    del burst
    held = rss_bytes()
    task = asyncio.create_task(memory.trim_loop(interval_s=0.05))
    await asyncio.sleep(0.5)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert held - rss_bytes() > MIN_RETURNED_BYTES
    assert len(survivors) == BURST_BLOCKS // KEEP_EVERY
