"""The segment-index writer: rows wait, in order, while the store is down; at most
`max_pending` of them, then the pipeline waits; all are written when the store is back."""

from __future__ import annotations

import asyncio

import pytest

from livechannel.errors import StorageError
from livechannel.hls.index_writer import IndexWriter
from livechannel.store.base import Segment
from livechannel.store.conflicts import SegmentConflict
from livechannel.store.memory import MemoryStore


class FlakyStore(MemoryStore):
    down = True

    async def add_segment(self, segment: Segment) -> None:
        if self.down:
            raise StorageError("connection refused")
        await super().add_segment(segment)


def _segment(seq: int) -> Segment:
    return Segment("live", "c", seq, f"c/{1000 + seq}.ts", 1000 + seq, 1000, 10, 1, seq == 0)


async def test_rows_wait_bounded_and_are_written_in_order() -> None:
    store = FlakyStore()
    faults: list[str] = []
    writer = IndexWriter(store, max_pending=3, on_fault=faults.append)
    writer.start()
    try:
        for seq in range(3):
            await asyncio.wait_for(writer.add(_segment(seq)), 1)  # room: no wait
        fourth = asyncio.ensure_future(writer.add(_segment(3)))
        await asyncio.sleep(0.5)
        assert not fourth.done() and writer.pending == 3  # bounded: the caller waits
        assert faults and faults[-1].startswith("metadata store:")
        store.down = False
        await asyncio.wait_for(fourth, 5)
        await asyncio.wait_for(writer.flush(), 5)
        assert [s.seq for s in await store.last_segments("live", "c", 10)] == [0, 1, 2, 3]
        assert faults[-1] == ""  # recovered
    finally:
        await writer.stop()


async def test_a_conflict_ends_the_writer_and_reaches_the_caller() -> None:
    store = MemoryStore()
    await store.add_segment(_segment(0))
    writer = IndexWriter(store, max_pending=3)
    writer.start()
    other = Segment("live", "c", 0, "c/5.ts", 5, 1000, 10, 2, False)  # seq 0 is taken
    await writer.add(other)
    with pytest.raises(SegmentConflict):
        await asyncio.wait_for(writer.flush(), 5)
