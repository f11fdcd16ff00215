"""One long-lived PostgreSQL session per worker: it LISTENs for cross-node notices and
competes for the cluster's leader lock.

Notices: the store NOTIFYs in the transaction that disables, puts or deletes a channel
(postgres.py); every worker of every node receives them within milliseconds of the commit,
so a kick needs no fast polling. While this session is down (database restarting,
unreachable) `connected` is False and the registry falls back to polling the kick flags;
after a reconnect `on_reconnect` runs once, so nothing disabled meanwhile is missed.

Leader: cluster-wide jobs (the stale-push sweep, retention) must run once, not on every
node. The worker whose session holds a session-level advisory lock is the leader; the lock
goes with the session, so when the leader dies (or loses the database) PostgreSQL frees it
and another worker takes it within LEADER_RETRY_S. TCP keepalives on the session make
PostgreSQL notice a leader whose machine vanished without closing its connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from typing import Any

import asyncpg  # type: ignore[import-untyped]

from livechannel.store.postgres import (
    CONNECT_TIMEOUT_S,
    NOTICE_CHANNEL,
    UNREACHABLE,
    redact_url,
)
from livechannel.store.postgres_schema import LEADER_LOCK_KEY

log = logging.getLogger("livechannel.store.notices")

RECONNECT_FIRST_DELAY_S = 0.2  # most outages are a restart: try again soon
RECONNECT_MAX_DELAY_S = 2.0  # and never wait long once it is back (kicks are polled meanwhile)
LEADER_RETRY_S = 2.0  # a non-leader tries the lock this often: the leader's job interval
# The server drops a session whose peer stopped answering after about idle + interval x count
# seconds (a leader on a machine that vanished): 10 + 3 x 3 s.
KEEPALIVE_SETTINGS = {
    "tcp_keepalives_idle": "10",
    "tcp_keepalives_interval": "3",
    "tcp_keepalives_count": "3",
}


class NoticeListener:
    def __init__(
        self,
        url: str,
        on_notice: Callable[[dict[str, Any]], None],
        on_reconnect: Callable[[], None] = lambda: None,
    ) -> None:
        self.url = url
        self.on_notice = on_notice
        self.on_reconnect = on_reconnect
        self.connected = False
        self.leader = False
        # Since when (Unix ms) this session has been up without a break: the store was
        # reachable all that time, so other workers' heartbeats could reach it too.
        self.up_since_ms: int | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="postgres notices")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        delay_s = RECONNECT_FIRST_DELAY_S
        first = True
        while True:
            conn = None
            try:
                conn = await asyncpg.connect(
                    self.url, timeout=CONNECT_TIMEOUT_S, server_settings=KEEPALIVE_SETTINGS
                )
                lost = asyncio.Event()
                conn.add_termination_listener(_setter(lost))
                await conn.add_listener(NOTICE_CHANNEL, self._received)
                self.connected = True
                self.up_since_ms = time.time_ns() // 1_000_000
                delay_s = RECONNECT_FIRST_DELAY_S
                if not first:
                    log.info("metadata store notices: reconnected")
                    self.on_reconnect()
                first = False
                await self._hold(conn, lost)
            except asyncio.CancelledError:
                raise
            except (*UNREACHABLE, asyncpg.PostgresError) as e:
                if self.connected or first:
                    log.warning("metadata store notices lost (%s): %s; polling meanwhile",
                                redact_url(self.url), e)  # fmt: skip
                first = False
            finally:
                self.connected = self.leader = False
                self.up_since_ms = None
                if conn is not None:
                    conn.terminate()
            await asyncio.sleep(delay_s)
            delay_s = min(delay_s * 2, RECONNECT_MAX_DELAY_S)

    async def _hold(self, conn: Any, lost: asyncio.Event) -> None:
        """Keep the session until it is lost; meanwhile become the leader when possible."""
        while not lost.is_set():
            if self.leader:  # a vanished server shows up in a query, not in an idle session
                await conn.fetchval("SELECT 1", timeout=CONNECT_TIMEOUT_S)
            else:
                took = await conn.fetchval(
                    "SELECT pg_try_advisory_lock($1)", LEADER_LOCK_KEY, timeout=CONNECT_TIMEOUT_S
                )
                self.leader = bool(took)
                if self.leader:
                    log.info("this worker now runs the cluster-wide jobs (leader)")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(lost.wait(), LEADER_RETRY_S)
        raise ConnectionResetError("the notice session ended")

    def _received(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        try:
            notice = json.loads(payload)
        except ValueError:
            log.warning("ignored a malformed notice: %r", payload[:200])
            return
        if isinstance(notice, dict):
            self.on_notice(notice)


def _setter(event: asyncio.Event) -> Callable[[Any], None]:
    return lambda _conn: event.set()
