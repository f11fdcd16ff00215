"""What only the PostgreSQL store must show: several nodes on one database at once (schema
migration, one publisher per channel under a race), a newer schema refused, an unreachable
database a retryable StorageError, and the NOTIFY that carries a kick to other nodes."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable

import asyncpg  # type: ignore[import-untyped]
import pytest

from livechannel.errors import ChannelStillLive, StorageError
from livechannel.store.base import Acl, ChannelConfig, ChannelStatus
from livechannel.store.postgres import NOTICE_CHANNEL, PostgresStore
from livechannel.store.postgres_notices import LEADER_RETRY_S, NoticeListener
from livechannel.store.postgres_schema import SCHEMA_VERSION
from tests.support.postgres import PostgresServer, free_port

B = "live"


async def test_nodes_starting_at_once_migrate_once(postgres: PostgresServer) -> None:
    db = postgres.new_database()
    stores = await asyncio.gather(*(PostgresStore.open(postgres.url(db)) for _ in range(6)))
    try:
        assert postgres.psql("SELECT version FROM livechannel_schema", db).split() == [
            str(SCHEMA_VERSION)
        ]
        await stores[0].ensure_bucket(B, Acl.PRIVATE, 1)
        assert [b.name for b in await stores[5].list_buckets()] == [B]
    finally:
        for s in stores:
            await s.close()


async def test_one_publisher_per_channel_under_a_race(postgres: PostgresServer) -> None:
    url = postgres.url(postgres.new_database())
    nodes = [await PostgresStore.open(url) for _ in range(4)]
    try:
        await nodes[0].ensure_bucket(B, Acl.PRIVATE, 1)
        await nodes[0].put_channel(B, "c", ChannelConfig(), 1)
        attempts = [
            node.start_push(B, "c", f"10.0.0.{i}:1", f"node{i}", 100)
            for i, node in enumerate(nodes)
            for _ in range(5)
        ]
        results = await asyncio.gather(*attempts, return_exceptions=True)
        started = [r for r in results if not isinstance(r, BaseException)]
        refused = [r for r in results if isinstance(r, ChannelStillLive)]
        assert len(started) == 1 and len(refused) == len(attempts) - 1
        live = await nodes[3].live_push(B, "c")
        assert live is not None and live.push_id == started[0].push_id
    finally:
        for node in nodes:
            await node.close()


async def test_newer_schema_is_refused(postgres: PostgresServer) -> None:
    db = postgres.new_database()
    store = await PostgresStore.open(postgres.url(db))
    await store.close()
    postgres.psql(f"UPDATE livechannel_schema SET version = {SCHEMA_VERSION + 1}", db)
    with pytest.raises(StorageError, match="schema version") as e:
        await PostgresStore.open(postgres.url(db))
    assert e.value.permanent


async def test_unreachable_database_fails_fast_and_retryable() -> None:
    port = free_port()  # nothing listens there
    t0 = time.monotonic()
    with pytest.raises(StorageError) as e:
        await PostgresStore.open(f"postgresql://u:secret@127.0.0.1:{port}/db")
    assert time.monotonic() - t0 < 10
    assert not e.value.permanent
    assert "secret" not in str(e.value)  # the password never reaches a message


async def test_disable_notifies_the_push_owner(postgres: PostgresServer) -> None:
    url = postgres.url(postgres.new_database())
    store = await PostgresStore.open(url)
    listener = await asyncpg.connect(url)
    got: asyncio.Queue[dict[str, object]] = asyncio.Queue()
    await listener.add_listener(NOTICE_CHANNEL, lambda *a: got.put_nowait(json.loads(a[3])))
    try:
        await store.ensure_bucket(B, Acl.PRIVATE, 1)
        await store.put_channel(B, "c", ChannelConfig(), 1)
        assert (await asyncio.wait_for(got.get(), 5))["kind"] == "channel"
        push = await store.start_push(B, "c", "1.2.3.4:5", "node-a", 10)
        await store.set_channel_status(B, "c", ChannelStatus.DISABLED, 20)
        kick = await asyncio.wait_for(got.get(), 5)
        assert kick == {
            "kind": "kick", "push_id": push.push_id, "worker": "node-a", "bucket": B,
            "channel": "c",
        }  # fmt: skip
        assert (await asyncio.wait_for(got.get(), 5))["kind"] == "channel"
        with pytest.raises(ChannelStillLive):  # a refused change notifies nobody
            await store.delete_channel(B, "c")
        await asyncio.sleep(0.2)
        assert got.empty()
    finally:
        await listener.close()
        await store.close()


async def test_one_leader_and_a_successor_when_it_goes(postgres: PostgresServer) -> None:
    """Cluster-wide jobs run on one worker: the one whose notice session holds the leader
    lock. When that session ends (its process died), another takes over."""
    url = postgres.url(postgres.new_database())
    listeners = [NoticeListener(url, lambda notice: None) for _ in range(3)]
    for listener in listeners:
        listener.start()
    try:
        await _until(lambda: sum(x.leader for x in listeners) == 1, 10)
        await asyncio.sleep(LEADER_RETRY_S * 1.5)  # the others keep trying: still one
        assert sum(x.leader for x in listeners) == 1
        assert all(x.connected and x.up_since_ms for x in listeners)
        leader = next(x for x in listeners if x.leader)
        await leader.stop()
        rest = [x for x in listeners if x is not leader]
        t0 = time.monotonic()
        await _until(lambda: sum(x.leader for x in rest) == 1, LEADER_RETRY_S * 3)
        assert time.monotonic() - t0 <= LEADER_RETRY_S + 1
    finally:
        for listener in listeners:
            await listener.stop()


async def _until(check: Callable[[], bool], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
