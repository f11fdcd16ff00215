"""Bytes of finished segments waiting for storage, across every push of one process.

Each push may queue `Limits.upload_queue_segments` segments before we stop reading its socket,
which bounds one push. This bounds them all: when storage falls behind for every push at
once (an S3 outage, a disk stalled in writeback, a box past its capacity) 8 segments per push
is ~14 MB at 2.6 Mbit/s, and the benchmark saw 8.6 GB resident at 725 publishers on two
workers. Once the budget is spent, every push that already has a segment queued is paused as
well; a push with nothing queued still queues its next segment, so no push starves.
"""

from __future__ import annotations

import asyncio

# Paused pushes resume once the queued bytes fall below this share of the budget, so that
# hundreds of them do not wake on every segment stored while the budget hovers at its edge.
RESUME_FRACTION = 0.75


class UploadBudget:
    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.queued_bytes = 0
        self._room = asyncio.Event()
        self._room.set()

    @property
    def spent(self) -> bool:
        return not self._room.is_set()

    def take(self, size: int) -> None:
        self.queued_bytes += size
        if self.queued_bytes >= self.max_bytes:
            self._room.clear()

    def give_back(self, size: int) -> None:
        self.queued_bytes -= size
        if self.spent and self.queued_bytes < self.max_bytes * RESUME_FRACTION:
            self._room.set()

    async def wait_for_room(self) -> None:
        await self._room.wait()
