"""Memory a burst freed goes back to the operating system.

glibc's malloc gives freed memory back to the system only from the top of its heap; the rest
stays in the process as free lists. After a burst of hostile traffic (a thousand half-open
handshakes, viewers that stopped reading, partial messages in 4 KiB pieces) the process kept
25-30 MiB it no longer used (the soak, docs/robustness.md: 102.7 MiB at the start, 132.5 at
the end). `malloc_trim(0)` hands every whole free page back; every TRIM_INTERVAL_S it took
the same run to 118.5. A trim takes a few milliseconds of a worker thread on a fragmented
heap of 100 MiB; nothing happens where there is no glibc.
"""

from __future__ import annotations

import asyncio
import ctypes
from collections.abc import Callable

TRIM_INTERVAL_S = 10.0  # a burst's memory is back within this; ~0.05 % of a core


def _malloc_trim() -> Callable[[], object] | None:
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):  # musl, macOS
        return None
    trim.argtypes = (ctypes.c_size_t,)
    trim.restype = ctypes.c_int
    return lambda: trim(0)


async def trim_loop(interval_s: float = TRIM_INTERVAL_S) -> None:
    """Run until cancelled: give free heap pages back every `interval_s`."""
    trim = _malloc_trim()
    if trim is None:
        return
    while True:
        await asyncio.sleep(interval_s)
        await asyncio.to_thread(trim)  # arena locks, not the event loop
