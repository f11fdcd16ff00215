"""A push's closed segments on their way to storage: strictly in order, through a bounded
queue, by one task per push (the push pipeline runs `run`, pipeline.py).

A queued segment's bytes are already with its storage writer (the pipeline hands the open
segment over as it grows); what waits here is its name, its writer and its size, counted
against this push's queue and the process's UploadBudget. Per segment: the writer's close
(the object appears whole), then the segment index and the playlist put together, so a
playlist never names a segment that is not durable and the index never names a missing
object; the playlist does not wait for the index (its latency is what players see, and the
index only feeds VOD playlists, the window after a restart and retention, none of which need
it first).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from livechannel.errors import StorageError
from livechannel.hls.index_writer import IndexWriter
from livechannel.hls.live_endpoint import LiveEndpoint
from livechannel.hls.naming import SegmentName
from livechannel.hls.playlist import render
from livechannel.hls.segments import SegmentReady
from livechannel.hls.stats import PushStats
from livechannel.hls.upload_budget import UploadBudget
from livechannel.hls.window import LiveWindow
from livechannel.ops import metrics
from livechannel.storage.base import ObjectStorage, SegmentWriter, content_type_for
from livechannel.store.base import Push, Segment

log = logging.getLogger("livechannel.pipeline")

Notify = Callable[[str, Mapping[str, Any]], None]  # (event, fields): see ops.webhooks

RETRY_FIRST_DELAY_S = 0.2  # first storage retry comes quickly: most faults are blips
RETRY_MAX_DELAY_S = 5.0  # never wait longer than this between retries of one put


@dataclass(frozen=True, slots=True)
class _Queued:
    ready: SegmentReady  # without its chunks: they are with the writer
    named: SegmentName
    writer: SegmentWriter
    closed_at: float  # perf_counter() when it was closed, for the playlist latency metric


class SegmentUploads:
    def __init__(
        self,
        *,
        storage: ObjectStorage,
        push: Push,
        playlist_key: str,
        queue_segments: int,
        upload_budget: UploadBudget,
        stats: PushStats,
        index: IndexWriter,
        notify: Notify,
    ) -> None:
        self.storage = storage
        self.push = push
        self.playlist_key = playlist_key
        self.queue_segments = queue_segments
        self.upload_budget = upload_budget
        self.stats = stats
        self.index = index
        self.notify = notify
        # Set by the pipeline's open, before the first segment: the live window, and the
        # LL-HLS playlist in memory (None without parts).
        self.window: LiveWindow | None = None
        self.ll: LiveEndpoint | None = None
        self._stored_init_key = ""
        self._queue: deque[_Queued] = deque()
        self._queue_bytes = 0
        self._changed = asyncio.Event()
        self._closing = False

    # --- the queue ------------------------------------------------------------------------

    def put(self, ready: SegmentReady, named: SegmentName, writer: SegmentWriter) -> None:
        """Queue a closed segment whose chunks its writer already has."""
        closed_at = time.perf_counter()  # the closing keyframe just arrived
        self._queue.append(_Queued(replace(ready, chunks=[]), named, writer, closed_at))
        self._queue_bytes += ready.size
        self.upload_budget.take(ready.size)
        self.stats.on_upload_queue(len(self._queue), self._queue_bytes)
        self._changed.set()

    @property
    def backlog_full(self) -> bool:
        """This push's queue is full, or the process's budget is spent and we hold part of
        it (a push with nothing queued may always queue one segment: none starves)."""
        queued = len(self._queue)
        return queued >= self.queue_segments or (queued > 0 and self.upload_budget.spent)

    async def wait_for_change(self) -> None:
        """Until a segment is queued or stored, or (budget spent) the budget has room."""
        self._changed.clear()
        waits: set[asyncio.Future[object]] = {asyncio.ensure_future(self._changed.wait())}
        if self.upload_budget.spent:
            waits.add(asyncio.ensure_future(self.upload_budget.wait_for_room()))
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiting in waits:
                waiting.cancel()

    def close(self) -> None:
        """Nothing more will be queued: `run` returns once the queue is empty."""
        self._closing = True
        self._changed.set()

    def drop(self) -> None:
        """Forget segments that will never be stored, and give their bytes back to the
        process's budget: a failed push must not shrink it for every other push."""
        for queued in self._queue:
            queued.writer.abort()
        self._queue.clear()
        self.upload_budget.give_back(self._queue_bytes)
        self._queue_bytes = 0

    # --- the upload task ------------------------------------------------------------------

    async def run(self) -> None:
        """Store the queued segments in order until closed and empty (a refused key ends
        it with that error; storage faults are retried)."""
        while True:
            if not self._queue:
                if self._closing:
                    return
                self._changed.clear()
                await self._changed.wait()
                continue
            queued = self._queue[0]
            await self._store_segment(queued)
            self._queue.popleft()
            self._queue_bytes -= queued.ready.size
            self.upload_budget.give_back(queued.ready.size)
            del queued  # not held while waiting for the next one: a whole segment per push
            self.stats.on_upload_queue(len(self._queue), self._queue_bytes)
            self._changed.set()

    async def _store_segment(self, queued: _Queued) -> None:
        window = self.window
        assert window is not None
        ready, named = queued.ready, queued.named
        key, init, init_key = named.key, ready.init, named.init_key
        if init is not None and init_key != self._stored_init_key:
            await self._retry(lambda: self.storage.put(init_key, init, "video/mp4"), init_key)
            self._stored_init_key = init_key
        segment = Segment(
            bucket=self.push.bucket,
            channel=self.push.channel,
            seq=named.seq,
            key=key,
            start_ms=named.key_ms,
            duration_ms=ready.duration_ms,
            size=ready.size,
            push_id=self.push.push_id,
            discontinuity=named.discontinuity,
            init_key=init_key,
        )
        await self._retry(queued.writer.close, key)
        if self.ll is not None:
            self.ll.state.stored(key.rsplit("/", 1)[-1])
        window.add(segment)
        self.stats.segments += 1
        # The row waits in the index writer if the metadata store is down; the playlist
        # does not wait for it.
        await self.index.add(segment)
        await self.write_playlist(ended=False)
        metrics.PLAYLIST_SECONDS.observe(time.perf_counter() - queued.closed_at)
        metrics.SEGMENTS.inc()
        metrics.SEGMENT_SECONDS.observe(ready.duration_ms / 1000)
        push_id = self.push.push_id
        seq, duration_s = segment.seq, ready.duration_ms / 1000
        self.notify(
            "on_segment",
            {"push_id": push_id, "key": key, "sequence": seq, "duration_s": duration_s,
             "size": ready.size},
        )  # fmt: skip
        self.notify(
            "on_playlist",
            {"push_id": push_id, "key": self.playlist_key, "sequence": seq, "ended": False},
        )

    async def write_playlist(self, *, ended: bool) -> None:
        assert self.window is not None
        text = render(self.window.playlist(ended=ended)).encode()
        key = self.playlist_key
        await self._retry(lambda: self.storage.put(key, text, content_type_for(key)), key)

    def _log_context(self, reason: str | None) -> dict[str, object]:
        """Fields of this push's log records (livechannel.ops.logs)."""
        p = self.push
        return {"bucket": p.bucket, "channel": p.channel, "push_id": p.push_id,
                "reason": reason}  # fmt: skip

    async def _retry(self, op: Callable[[], object], what: str) -> None:
        """Retry storage faults with capped exponential backoff and jitter, forever: the
        queue bound (and the paused socket) keeps memory in check meanwhile."""
        delay_s = RETRY_FIRST_DELAY_S
        while True:
            try:
                await op()  # type: ignore[misc]
            except StorageError as e:
                self.stats.storage_error = str(e)
                log.error("storage failed for %s: %s; retrying in %.1fs", what, e, delay_s,
                          extra=self._log_context(str(e)))  # fmt: skip
                await asyncio.sleep(delay_s * random.uniform(0.5, 1.0))
                delay_s = min(delay_s * 2, RETRY_MAX_DELAY_S)
                continue
            if self.stats.storage_error:
                log.info("storage recovered for %s", what, extra=self._log_context(None))
                self.stats.storage_error = ""
            return
