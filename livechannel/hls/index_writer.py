"""A push's segment-index writes, decoupled from its segments and playlist.

The segment index (the metadata store) feeds VOD playlists, the window after a restart and
retention; none of them needs a row the instant its segment is stored, but the live playlist
does need the segment at once. So rows go through this small in-order queue: while the store
is unreachable (a PostgreSQL restart, a network cut) the push keeps cutting segments and
writing playlists, and the rows wait here and are written, in order, when the store is back.
Memory stays bounded: past `max_pending` rows (Limits.max_pending_index_segments) the pipeline
waits for room, which stops reading the publisher, the same backpressure as a storage stall.

The push is ended in the store only after `flush`: a reconnecting publisher, on any node,
cannot start the channel's next push (and number its segments) before the last push's rows
are all in the index.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import deque
from collections.abc import Callable

from livechannel.errors import StorageError
from livechannel.store.base import MetadataStore, Segment

log = logging.getLogger("livechannel.pipeline")

RETRY_FIRST_DELAY_S = 0.2  # a blip clears fast
RETRY_MAX_DELAY_S = 1.0  # a store that is back gets its rows within a second


class IndexWriter:
    def __init__(
        self,
        store: MetadataStore,
        max_pending: int,
        on_fault: Callable[[str], None] = lambda error: None,
    ) -> None:
        self.store = store
        self.max_pending = max_pending
        self.on_fault = on_fault  # "" when the store answers again
        self._pending: deque[Segment] = deque()
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._faulty = False

    @property
    def pending(self) -> int:
        return len(self._pending)

    @property
    def failed(self) -> BaseException | None:
        """What ended the writer for good (a SegmentConflict: two writers on one channel)."""
        task = self._task
        if task is None or not task.done() or task.cancelled():
            return None
        return task.exception()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="segment index")

    async def add(self, segment: Segment) -> None:
        """Queue a row; waits only while `max_pending` rows are already waiting."""
        while len(self._pending) >= self.max_pending and self.failed is None:
            self._changed.clear()
            await self._changed.wait()
        if self.failed is not None:
            raise self.failed
        self._pending.append(segment)
        self._changed.set()

    async def flush(self) -> None:
        """Wait until every queued row is written (or the writer failed), then stop."""
        while self._pending and self.failed is None:
            self._changed.clear()
            await self._changed.wait()
        await self.stop()
        if self.failed is not None:
            raise self.failed

    async def stop(self) -> None:
        task = self._task
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        delay_s = RETRY_FIRST_DELAY_S
        try:
            while True:
                if not self._pending:
                    self._changed.clear()
                    await self._changed.wait()
                    continue
                segment = self._pending[0]
                try:
                    await self.store.add_segment(segment)
                except StorageError as e:
                    if not self._faulty:
                        self._faulty = True
                        log.error("segment index write of %s failed: %s; %d rows wait, retrying",
                                  segment.key, e, len(self._pending))  # fmt: skip
                    self.on_fault(f"metadata store: {e}")
                    await asyncio.sleep(delay_s * random.uniform(0.5, 1.0))
                    delay_s = min(delay_s * 2, RETRY_MAX_DELAY_S)
                    continue
                if self._faulty:
                    self._faulty = False
                    log.info("segment index writes recovered; %d rows to go", len(self._pending))
                    self.on_fault("")
                delay_s = RETRY_FIRST_DELAY_S
                self._pending.popleft()
                self._changed.set()
        finally:
            self._changed.set()  # wake anyone waiting on a writer that has stopped
