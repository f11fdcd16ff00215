"""Random operation sequences give the same answers (or the same error types) from both stores."""

from __future__ import annotations

import asyncio
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from livechannel.errors import OssError
from livechannel.store.base import Acl, ChannelConfig, ChannelStatus, MetadataStore, Segment
from livechannel.store.conflicts import SegmentConflict
from livechannel.store.memory import MemoryStore
from livechannel.store.sqlite import SqliteStore

B = "live"
names = st.sampled_from(["a", "ab", "é"])
statuses = st.sampled_from(list(ChannelStatus))
small = st.integers(min_value=0, max_value=12)
push_ids = st.integers(min_value=1, max_value=4)  # ids are dense: few pushes per example
ages_s = st.integers(min_value=0, max_value=3)
worker_sets = st.sets(st.sampled_from(["w1", "w2"]))

# Push lifecycle ops come twice: the interesting states need several of them in a row.
push_ops = st.one_of(
    st.tuples(st.just("start_push"), names, st.sampled_from(["w1", "w2"])),
    st.tuples(st.just("heartbeat"), push_ids),
    st.tuples(st.just("end_push"), push_ids),
    st.tuples(st.just("close_stale"), ages_s, worker_sets),
)
operations = st.one_of(
    push_ops,
    push_ops,
    st.tuples(st.just("put_channel"), names, statuses),
    st.tuples(st.just("set_status"), names, statuses),
    st.tuples(st.just("delete_channel"), names),
    st.tuples(st.just("start_push"), names, st.sampled_from(["w1", "w2"])),
    st.tuples(st.just("heartbeat"), push_ids),
    st.tuples(st.just("end_push"), push_ids),
    st.tuples(st.just("close_stale"), ages_s, worker_sets),
    st.tuples(st.just("close_worker"), st.sampled_from(["w1", "w2"])),
    st.tuples(st.just("running_workers")),
    st.tuples(st.just("history"), names, small),
    st.tuples(
        st.just("list"), st.sampled_from(["", "a", "b"]), st.sampled_from(["", "a", "z"]), small
    ),
    st.tuples(st.just("live"), names),
    st.tuples(st.just("add_segment"), names, small, small, st.booleans()),
    st.tuples(st.just("last"), names, small),
    st.tuples(st.just("between"), names, small, small),
    st.tuples(st.just("disc_before"), names, small),
)


async def _apply(store: MetadataStore, op: tuple[Any, ...], now_ms: int) -> object:
    kind, *args = op
    try:
        match kind:
            case "put_channel":
                return await store.put_channel(B, args[0], ChannelConfig(status=args[1]), now_ms)
            case "set_status":
                return await store.set_channel_status(B, args[0], args[1], now_ms)
            case "delete_channel":
                return await store.delete_channel(B, args[0])
            case "start_push":
                return await store.start_push(B, args[0], "1.2.3.4:5", args[1], now_ms)
            case "heartbeat":
                return await store.heartbeat(args[0], now_ms, f'{{"t": {now_ms}}}')
            case "end_push":
                return await store.end_push(args[0], now_ms)
            case "close_stale":
                return await store.close_stale_pushes(now_ms - 1000 * args[0], args[1])
            case "running_workers":
                return await store.running_workers()
            case "close_worker":
                return await store.close_worker_pushes(args[0])
            case "history":
                return await store.history(B, args[0], args[1])
            case "list":
                return await store.list_channels(B, args[0], args[1], args[2])
            case "live":
                return await store.live_push(B, args[0])
            case "add_segment":
                name, seq, start_s, disc = args
                key = f"{name}/{start_s}.ts"
                segment = Segment(B, name, seq, key, 1000 * start_s, 2000, 10, 1, disc)
                return await store.add_segment(segment)
            case "last":
                return await store.last_segments(B, args[0], args[1])
            case "between":
                return await store.segments_between(B, args[0], 1000 * args[1], 1000 * args[2])
            case "disc_before":
                return await store.discontinuities_before(B, args[0], args[1])
    except (OssError, SegmentConflict) as e:
        return type(e)
    raise AssertionError(kind)


async def _compare(ops: list[tuple[Any, ...]]) -> None:
    memory = MemoryStore()
    sqlite = await SqliteStore.open(":memory:")
    try:
        for store in (memory, sqlite):
            await store.ensure_bucket(B, Acl.PRIVATE, 0)
            for name in ("a", "é"):  # most examples start with channels to push to
                await store.put_channel(B, name, ChannelConfig(), 0)
        for step, op in enumerate(ops):
            now_ms = 1000 * (step + 1)
            expected = await _apply(memory, op, now_ms)
            got = await _apply(sqlite, op, now_ms)
            assert got == expected, f"step {step}: {op}"
    finally:
        await sqlite.close()


@settings(max_examples=300, deadline=None)
@given(st.lists(operations, max_size=40))
def test_memory_and_sqlite_agree(ops: list[tuple[Any, ...]]) -> None:
    asyncio.run(_compare(ops))
