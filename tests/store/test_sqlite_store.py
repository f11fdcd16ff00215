"""What only the SQLite store can show: several processes, reopening, schema, failures."""

from __future__ import annotations

import asyncio
import multiprocessing
import sqlite3
from multiprocessing.synchronize import Barrier
from pathlib import Path

import pytest

from livechannel.errors import ChannelStillLive, StorageError
from livechannel.store import sqlite_connection
from livechannel.store.base import Acl, ChannelConfig, ChannelStatus, Segment
from livechannel.store.sqlite import SqliteStore
from livechannel.store.sqlite_schema import SCHEMA_VERSION

B = "live"
RACERS = 4  # processes racing for each channel
RACE_CHANNELS = 15  # rounds: each one a fresh channel all racers try at once
RACE_TIMEOUT_S = 60  # spawning interpreters is slow on a loaded CI machine


def _race(path: str, worker: str, barrier: Barrier, results: multiprocessing.Queue) -> None:
    """Child process: for each channel, wait for all racers, then try to start a push."""

    async def run() -> list[tuple[str, int]]:
        store = await SqliteStore.open(path)
        won = []
        try:
            for i in range(RACE_CHANNELS):
                barrier.wait()
                try:
                    push = await store.start_push(B, f"c{i}", "1.2.3.4:5", worker, 100)
                except ChannelStillLive:
                    continue
                won.append((push.channel, push.push_id))
        finally:
            await store.close()
        return won

    results.put((worker, asyncio.run(run())))


async def _prepared(path: str) -> SqliteStore:
    store = await SqliteStore.open(path)
    await store.ensure_bucket(B, Acl.PRIVATE, 1)
    return store


async def test_processes_racing_start_push_one_wins_each_channel(tmp_path: Path) -> None:
    path = str(tmp_path / "meta.db")
    store = await _prepared(path)
    for i in range(RACE_CHANNELS):
        await store.put_channel(B, f"c{i}", ChannelConfig(), 1)
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(RACERS, timeout=RACE_TIMEOUT_S)
    results: multiprocessing.Queue = ctx.Queue()
    procs = [
        ctx.Process(target=_race, args=(path, f"w{n}", barrier, results)) for n in range(RACERS)
    ]
    for p in procs:
        p.start()
    outcomes = dict(
        await asyncio.to_thread(lambda: [results.get(timeout=RACE_TIMEOUT_S) for _ in procs])
    )
    for p in procs:
        p.join(RACE_TIMEOUT_S)
        assert p.exitcode == 0
    wins = [
        (worker, channel, push_id) for worker, won in outcomes.items() for channel, push_id in won
    ]
    assert sorted(channel for _, channel, _ in wins) == sorted(
        f"c{i}" for i in range(RACE_CHANNELS)
    )
    for worker, channel, push_id in wins:
        live = await store.live_push(B, channel)
        assert live is not None and (live.push_id, live.worker) == (push_id, worker)
    await store.close()


async def test_unique_index_enforces_one_running_push(tmp_path: Path) -> None:
    """Even a writer that skips the store's checks cannot add a second running push."""
    path = str(tmp_path / "meta.db")
    store = await _prepared(path)
    await store.put_channel(B, "c", ChannelConfig(), 1)
    await store.start_push(B, "c", "1.2.3.4:5", "w1", 100)
    await store.close()
    conn = sqlite3.connect(path)
    try:
        with pytest.raises(sqlite3.IntegrityError):
            conn.execute(
                "INSERT INTO pushes (bucket, channel, remote_addr, start_ms, worker, "
                "heartbeat_ms, stats_json) VALUES ('live', 'c', 'x', 1, 'w2', 1, '{}')"
            )
    finally:
        conn.close()


async def test_reopen_keeps_everything(tmp_path: Path) -> None:
    path = str(tmp_path / "meta.db")
    store = await _prepared(path)
    await store.put_channel(B, "c", ChannelConfig(description="kept"), 5)
    push = await store.start_push(B, "c", "1.2.3.4:5", "w1", 100)
    seg = Segment(B, "c", 0, "c/100.ts", 100, 2000, 10, push.push_id, True)
    await store.add_segment(seg)
    await store.close()

    again = await SqliteStore.open(path)
    channel = await again.get_channel(B, "c")
    assert channel is not None and channel.config.description == "kept"
    assert await again.live_push(B, "c") == push
    assert await again.last_segments(B, "c", 1) == [seg]
    await again.end_push(push.push_id, 200)
    assert (await again.start_push(B, "c", "x:1", "w1", 300)).push_id > push.push_id
    await again.close()

    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        conn.close()


async def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = str(tmp_path / "meta.db")
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(StorageError) as caught:
        await SqliteStore.open(path)
    assert caught.value.permanent


async def test_unopenable_path_is_a_permanent_storage_error(tmp_path: Path) -> None:
    with pytest.raises(StorageError) as caught:
        await SqliteStore.open(str(tmp_path))  # a directory
    assert caught.value.permanent


async def test_a_locked_database_is_a_retryable_error_and_the_loop_keeps_running(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_connection, "BUSY_TIMEOUT_S", 0.3)
    path = str(tmp_path / "meta.db")
    store = await _prepared(path)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process holding the write lock
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    ticker = asyncio.create_task(tick())
    try:
        with pytest.raises(StorageError) as caught:
            await store.put_channel(B, "c", ChannelConfig(), 1)
        assert not caught.value.permanent
        assert ticks >= 10  # the busy wait ran off the event loop
        assert await store.get_channel(B, "c") is None  # readers are not blocked (WAL)
    finally:
        ticker.cancel()
        other.execute("ROLLBACK")
        other.close()
    await store.put_channel(B, "c", ChannelConfig(), 1)  # and it recovers
    await store.set_channel_status(B, "c", ChannelStatus.DISABLED, 2)
    await store.close()
