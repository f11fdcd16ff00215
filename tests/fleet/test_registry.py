"""The registry's kick poll and heartbeat against a real store (livechannel.fleet.registry)."""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
from dataclasses import dataclass, field

import pytest

from livechannel.fleet import registry as registry_module
from livechannel.fleet.registry import ENDED_BY_SWEEP, Registry
from livechannel.store.base import Acl, ChannelConfig, ChannelStatus
from livechannel.store.memory import MemoryStore

B = "live"


@dataclass
class FakeSession:
    bucket: str
    channel: str
    push_id: int
    media_ms: int = 0
    kicks: list[str] = field(default_factory=list)

    def stats_json(self, now_ms: int) -> str:
        return json.dumps({"now": now_ms})

    def last_media_ms(self) -> int:
        return self.media_ms

    def kick(self, reason: str) -> None:
        self.kicks.append(reason)


async def test_disabled_swept_and_idle_pushes_are_kicked_with_their_reason() -> None:
    store = MemoryStore()
    now = [1_000]
    await store.ensure_bucket(B, Acl.PRIVATE, 0)
    sessions = {}
    for name in ("fine", "disabled", "swept", "idle"):
        await store.put_channel(B, name, ChannelConfig(), 0)
        push = await store.start_push(B, name, "127.0.0.1:1", "w", now[0])
        sessions[name] = FakeSession(B, name, push.push_id, media_ms=now[0])
    reg = Registry(store, now_ms=lambda: now[0], idle_timeout_s=5, end_grace_s=10)
    for session in sessions.values():
        reg.add(session)
    await store.set_channel_status(B, "disabled", ChannelStatus.DISABLED, now[0])
    await store.end_push(sessions["swept"].push_id, now[0])  # what a stale sweep does
    sessions["idle"].media_ms = now[0] - 6_000
    for name in ("fine", "disabled", "swept"):
        sessions[name].media_ms = now[0]
    reg.start()
    try:
        await asyncio.sleep(registry_module.KICK_POLL_INTERVAL_S * 1.5)  # one cheap poll
        assert sessions["fine"].kicks == []
        assert sessions["disabled"].kicks[:1] == ["channel disabled"]
        assert sessions["swept"].kicks[:1] == [ENDED_BY_SWEEP]
        assert sessions["idle"].kicks[:1] == ["no media for 5 s"]
        # The figures are written once per heartbeat, not on every poll.
        fine = await store.live_push(B, "fine")
        assert fine is not None and fine.heartbeat_ms == 1_000
        now[0] = 2_000
        await asyncio.sleep(registry_module.HEARTBEAT_INTERVAL_S)
        fine = await store.live_push(B, "fine")
        assert fine is not None and fine.heartbeat_ms == 2_000
        assert json.loads(fine.stats_json) == {"now": 2_000}
        assert sessions["fine"].kicks == []
    finally:
        await reg.stop()


async def test_lag_is_how_late_a_round_finishes() -> None:
    class SlowStore(MemoryStore):
        delay_s = 0.0

        async def running_pushes(self, push_ids):  # type: ignore[no-untyped-def]
            await asyncio.sleep(self.delay_s)
            return await super().running_pushes(push_ids)

        async def heartbeat_many(self, beats, now_ms):  # type: ignore[no-untyped-def]
            await asyncio.sleep(self.delay_s)  # a round is a poll or a heartbeat: both slow
            return await super().heartbeat_many(beats, now_ms)

    store = SlowStore()
    reg = Registry(store, now_ms=lambda: 0, idle_timeout_s=5, end_grace_s=10)
    reg.add(FakeSession(B, "c", 1))
    reg.start()
    try:
        await asyncio.sleep(registry_module.KICK_POLL_INTERVAL_S * 1.5)
        assert 0 <= reg.lag_s < 0.1
        store.delay_s = 0.4
        await asyncio.sleep(registry_module.KICK_POLL_INTERVAL_S + 0.6)
        assert 0.35 <= reg.lag_s < 0.6
        store.delay_s = 0.0
        await asyncio.sleep(registry_module.KICK_POLL_INTERVAL_S * 3)
        assert reg.lag_s < 0.1
    finally:
        await reg.stop()


class FullDiskStore(MemoryStore):
    """A store whose writes fail as SQLite's do on a full disk, until `full` is cleared."""

    full = True

    async def running_pushes(self, push_ids):  # type: ignore[no-untyped-def]
        if self.full:
            raise sqlite3.OperationalError("database or disk is full")
        return await super().running_pushes(push_ids)

    async def heartbeat_many(self, beats, now_ms):  # type: ignore[no-untyped-def]
        if self.full:
            raise sqlite3.OperationalError("database or disk is full")
        return await super().heartbeat_many(beats, now_ms)


async def test_a_full_metadata_disk_is_logged_once_then_on_recovery(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The heartbeat retries every poll; each failure once wrote a traceback (four a second)."""
    store = FullDiskStore()
    await store.ensure_bucket(B, Acl.PRIVATE, 0)
    await store.put_channel(B, "cam", ChannelConfig(), 0)
    push = await store.start_push(B, "cam", "127.0.0.1:1", "w", 1_000)
    reg = Registry(store, now_ms=lambda: 1_000, idle_timeout_s=60, end_grace_s=10)
    reg.add(FakeSession(B, "cam", push.push_id, media_ms=1_000))
    caplog.set_level(logging.INFO, logger="livechannel")
    reg.start()
    try:
        await asyncio.sleep(registry_module.KICK_POLL_INTERVAL_S * 6.5)  # six failed rounds
        store.full = False
        await asyncio.sleep(registry_module.KICK_POLL_INTERVAL_S * 2)
    finally:
        await reg.stop()
    failures = [r for r in caplog.records if "failed" in r.getMessage()]
    assert len(failures) == 1 and failures[0].exc_info is not None
    assert "disk is full" in str(failures[0].exc_info[1])
    recovered = [r for r in caplog.records if "recovered" in r.getMessage()]
    assert len(recovered) == 1 and recovered[0].exc_info is None


async def test_with_notices_up_only_heartbeats_ask_the_store() -> None:
    """While the notice session is up, kicks arrive as notices and the polls between
    heartbeats are skipped; when it is lost they resume at once."""

    class CountingStore(MemoryStore):
        polls = 0

        async def running_pushes(self, push_ids):  # type: ignore[no-untyped-def]
            self.polls += 1
            return await super().running_pushes(push_ids)

    @dataclass
    class Notices:
        connected: bool = True

    store = CountingStore()
    await store.ensure_bucket(B, Acl.PRIVATE, 0)
    await store.put_channel(B, "c", ChannelConfig(), 0)
    push = await store.start_push(B, "c", "127.0.0.1:1", "w", 0)
    session = FakeSession(B, "c", push.push_id, media_ms=0)
    reg = Registry(store, now_ms=lambda: 0, idle_timeout_s=60, end_grace_s=10)
    notices = Notices()
    reg.signals = notices
    reg.add(session)
    reg.start()
    try:
        await asyncio.sleep(registry_module.HEARTBEAT_INTERVAL_S * 1.6)
        assert store.polls == 0
        reg.on_notice({"kind": "kick", "push_id": push.push_id + 1})  # another node's push
        reg.on_notice({"kind": "channel", "bucket": B, "channel": "c"})
        assert session.kicks == []
        reg.on_notice({"kind": "kick", "push_id": push.push_id})
        assert session.kicks == ["channel disabled"]
        notices.connected = False
        await asyncio.sleep(registry_module.KICK_POLL_INTERVAL_S * 2.5)
        assert store.polls >= 1
    finally:
        await reg.stop()
