"""Dropping written segments from the kernel's page cache once players are done with them.

A live segment is read by players while it is in the live window (FragCount x FragDuration,
15 s by default) and rarely after. Left alone, the kernel keeps every written segment cached
until memory is full and must then reclaim it, so the page cache grows by the whole ingest
rate (~130 MB/s at 400 publishers of 2.6 Mbit/s). Where memory is given back to a hypervisor
(a VM's free-page reporting, as on this project's Firecracker dev box), every page the cache
takes from free memory also costs a host page fault: writing segments ran at ~380 MB/s per
core there against ~1.5 GB/s once old segments' pages were dropped and their pages reused
(docs/performance.md). Dropping a segment once it is written back is what costs nothing:
DONTNEED frees clean pages only, so an object is dropped `after_s` after its put, late enough
for the kernel's flusher (vm.dirty_expire_centisecs, 30 s by default) to have written it.
A later read simply reads the file from disk (and caches it again).
"""

from __future__ import annotations

import collections
import os
import threading

# Puts waiting for their drop. At 1000 publishers with 2 s segments and a 40 s delay there are
# ~20,000; past this bound the oldest are forgotten (left to the kernel, never an error).
MAX_PENDING_DROPS = 100_000


def drop_from_page_cache(path: str) -> None:
    """Ask the kernel to forget `path`'s clean cached pages (dirty ones it starts writing)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except OSError:
        return  # deleted (retention) or replaced by a directory: nothing cached to drop
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    except OSError:
        pass  # a filesystem without fadvise: the kernel's LRU decides, as before
    finally:
        os.close(fd)


class DropQueue:
    """Paths in put order with the time each is due to leave the cache. Thread-safe: puts run
    on several storage threads."""

    def __init__(self, after_s: float) -> None:
        self.after_s = after_s
        self._pending: collections.deque[tuple[float, str]] = collections.deque(
            maxlen=MAX_PENDING_DROPS
        )
        self._lock = threading.Lock()

    def add_and_take_due(self, path: str, now_s: float) -> list[str]:
        """Queue `path` and return the queued paths whose time has come, oldest first."""
        due = []
        with self._lock:
            self._pending.append((now_s + self.after_s, path))
            while self._pending and self._pending[0][0] <= now_s:
                due.append(self._pending.popleft()[1])
        return due
