"""The PostgreSQL MetadataStore: one database shared by the workers of many machines.

The same rules as the SQLite store, kept by PostgreSQL across nodes: a partial unique index
allows one running push per channel, and every check-then-write on a channel first locks the
channel's row (`SELECT ... FOR UPDATE`), so start_push, PutLiveChannel, a status change and a
delete on one channel happen one after another, whichever nodes run them.

Driver: asyncpg with its connection pool. bench/pg_drivers.py measured our statements through
asyncpg and psycopg 3 side by side: asyncpg spent 0.5-0.65x the client CPU per statement (the
cost an ingest node pays) at equal or lower latency.

Any failure to reach the database (refused, reset, timed out, shutting down) is a retryable
StorageError: the API answers 503, a publish is refused with a readable reason, and callers
that must not lose data (the segment index) retry. Cross-node notices (kicks, channel changes)
go out with NOTIFY in the transaction that causes them (postgres_notices.py listens).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Collection, Sequence
from contextlib import asynccontextmanager
from typing import Any

import asyncpg  # type: ignore[import-untyped]

from livechannel.errors import (
    LiveChannelDisabled,
    StorageError,
    no_bucket,
    no_channel,
    still_live,
)
from livechannel.store.base import Acl, Bucket, Channel, ChannelConfig, ChannelStatus, Push, Segment
from livechannel.store.conflicts import SegmentConflict
from livechannel.store.memory import INITIAL_STATS_JSON
from livechannel.store.postgres_schema import migrate
from livechannel.store.sqlite_schema import (
    CHANNEL_COLUMNS,
    PUSH_COLUMNS,
    SEGMENT_COLUMNS,
    SEGMENT_DISCONTINUITY,
    bucket_from_row,
    channel_from_row,
    channel_to_row,
    push_from_row,
    segment_from_row,
    segment_to_row,
)

NOTICE_CHANNEL = "livechannel"  # the LISTEN/NOTIFY channel every node listens on
# Connections per process: the heartbeat, kick poll, uploads' index writes and API requests
# overlap; more would only queue inside PostgreSQL (each connection is a server process).
POOL_MAX_SIZE = 8
POOL_MIN_SIZE = 0  # none kept open by force: asyncpg would log every failed refill in an outage
# A connect that takes longer than this is a database that is down or unreachable; the
# caller learns at once (503, a refused publish) instead of hanging.
CONNECT_TIMEOUT_S = 3.0
# Our statements take milliseconds; one still running after this is stuck behind a lock or a
# dead server.
STATEMENT_TIMEOUT_S = 10.0
ACQUIRE_TIMEOUT_S = 5.0  # waiting for a free pooled connection, or a new one

# What "cannot talk to the database (now)" looks like through asyncpg: retryable. Besides
# the connection failing: a server restarting or shutting down, a primary demoted by a
# failover (read-only until the client reaches the new one), a statement cancelled by the
# server's statement_timeout, lock or serialization conflicts.
UNREACHABLE = (
    OSError,
    TimeoutError,
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.TooManyConnectionsError,
    asyncpg.DeadlockDetectedError,
    asyncpg.SerializationError,
    asyncpg.ReadOnlySQLTransactionError,
    asyncpg.QueryCanceledError,
    asyncpg.LockNotAvailableError,
)


def redact_url(url: str) -> str:
    """The URL without its password, for messages and logs."""
    scheme, sep, rest = url.partition("://")
    creds, at, host = rest.rpartition("@")
    if not at or ":" not in creds:
        return url
    return f"{scheme}{sep}{creds.split(':', 1)[0]}:***@{host}"


def notice_payload(**fields: object) -> str:
    return json.dumps(fields, separators=(",", ":"))


class PostgresStore:
    def __init__(self, url: str, pool: Any) -> None:
        self.url = url
        self.where = redact_url(url)
        self._pool = pool

    @classmethod
    async def open(cls, url: str) -> PostgresStore:
        """Connect and create or migrate the schema now, so a bad URL fails at startup."""
        try:
            pool = await asyncpg.create_pool(
                url,
                min_size=POOL_MIN_SIZE,
                max_size=POOL_MAX_SIZE,
                timeout=CONNECT_TIMEOUT_S,
                command_timeout=STATEMENT_TIMEOUT_S,
                reset=_keep_session,
            )
        except (*UNREACHABLE, asyncpg.PostgresError, ValueError) as e:
            raise StorageError(f"metadata store {redact_url(url)}: {e}") from e
        store = cls(url, pool)
        try:
            async with store._conn() as conn:
                await migrate(conn, store.where)
        except BaseException:
            await store.close()
            raise
        return store

    async def close(self) -> None:
        try:
            await asyncio.wait_for(self._pool.close(), STATEMENT_TIMEOUT_S)
        except (TimeoutError, *UNREACHABLE):
            self._pool.terminate()

    @asynccontextmanager
    async def _conn(self) -> AsyncIterator[Any]:
        """A pooled connection; failures to reach the database become StorageError."""
        try:
            async with self._pool.acquire(timeout=ACQUIRE_TIMEOUT_S) as conn:
                yield conn
        except UNREACHABLE as e:
            raise StorageError(f"metadata store {self.where}: {type(e).__name__}: {e}") from e
        except asyncpg.PostgresError as e:
            raise StorageError(
                f"metadata store {self.where}: {type(e).__name__}: {e}", permanent=True
            ) from e

    @asynccontextmanager
    async def _tx(self) -> AsyncIterator[Any]:
        async with self._conn() as conn, conn.transaction():
            yield conn

    # --- buckets ------------------------------------------------------------------------
    async def ensure_bucket(self, name: str, acl: Acl, now_ms: int) -> Bucket:
        async with self._conn() as conn:
            await conn.execute(
                "INSERT INTO buckets (name, acl, created_ms) VALUES ($1, $2, $3) "
                "ON CONFLICT (name) DO NOTHING",
                name, acl.value, now_ms,
            )  # fmt: skip
            row = await conn.fetchrow("SELECT * FROM buckets WHERE name = $1", name)
        return bucket_from_row(row)

    async def get_bucket(self, name: str) -> Bucket | None:
        async with self._conn() as conn:
            row = await conn.fetchrow("SELECT * FROM buckets WHERE name = $1", name)
        return None if row is None else bucket_from_row(row)

    async def list_buckets(self) -> list[Bucket]:
        async with self._conn() as conn:
            rows = await conn.fetch("SELECT * FROM buckets ORDER BY name")
        return [bucket_from_row(row) for row in rows]

    async def set_bucket_acl(self, name: str, acl: Acl) -> None:
        async with self._conn() as conn:
            done = await conn.execute(
                "UPDATE buckets SET acl = $1 WHERE name = $2", acl.value, name
            )
        if done == "UPDATE 0":
            raise no_bucket(name)

    # --- channels -----------------------------------------------------------------------
    async def put_channel(
        self, bucket: str, name: str, config: ChannelConfig, now_ms: int
    ) -> Channel:
        async with self._tx() as conn:
            if await conn.fetchval("SELECT 1 FROM buckets WHERE name = $1", bucket) is None:
                raise no_bucket(bucket)
            await self._lock_channel(conn, bucket, name)
            if await self._running_push_id(conn, bucket, name) is not None:
                raise still_live(name)
            await conn.execute(
                f"INSERT INTO channels ({CHANNEL_COLUMNS}) "
                "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) "
                "ON CONFLICT (bucket, name) DO UPDATE SET description = EXCLUDED.description, "
                "status = EXCLUDED.status, frag_duration_s = EXCLUDED.frag_duration_s, "
                "frag_count = EXCLUDED.frag_count, playlist_name = EXCLUDED.playlist_name, "
                "snapshot_role_name = EXCLUDED.snapshot_role_name, "
                "snapshot_dest_bucket = EXCLUDED.snapshot_dest_bucket, "
                "snapshot_notify_topic = EXCLUDED.snapshot_notify_topic, "
                "snapshot_interval_s = EXCLUDED.snapshot_interval_s, "
                "last_modified_ms = EXCLUDED.last_modified_ms, "
                "segment_format = EXCLUDED.segment_format",
                *channel_to_row(bucket, name, config, now_ms),
            )
            await self._notify(conn, kind="channel", bucket=bucket, channel=name)
        return Channel(bucket=bucket, name=name, config=config, last_modified_ms=now_ms)

    async def get_channel(self, bucket: str, name: str) -> Channel | None:
        async with self._conn() as conn:
            row = await conn.fetchrow(
                f"SELECT {CHANNEL_COLUMNS} FROM channels WHERE bucket = $1 AND name = $2",
                bucket, name,
            )  # fmt: skip
        return None if row is None else channel_from_row(row)

    async def list_channels(
        self, bucket: str, prefix: str, marker: str, limit: int
    ) -> list[Channel]:
        async with self._conn() as conn:
            if await conn.fetchval("SELECT 1 FROM buckets WHERE name = $1", bucket) is None:
                raise no_bucket(bucket)
            # starts_with: a literal prefix (LIKE would treat "_" and "%" as wildcards)
            rows = await conn.fetch(
                f"SELECT {CHANNEL_COLUMNS} FROM channels WHERE bucket = $1 "
                "AND starts_with(name, $2) AND name > $3 ORDER BY name LIMIT $4",
                bucket, prefix, marker, max(limit, 0),
            )  # fmt: skip
        return [channel_from_row(row) for row in rows]

    async def set_channel_status(
        self, bucket: str, name: str, status: ChannelStatus, now_ms: int
    ) -> None:
        async with self._tx() as conn:
            done = await conn.execute(
                "UPDATE channels SET status = $1, last_modified_ms = $2 "
                "WHERE bucket = $3 AND name = $4",
                status.value, now_ms, bucket, name,
            )  # fmt: skip
            if done == "UPDATE 0":
                raise no_channel(name)
            if status is ChannelStatus.DISABLED:
                kicked = await conn.fetch(
                    "UPDATE pushes SET kick = true "
                    "WHERE bucket = $1 AND channel = $2 AND end_ms IS NULL "
                    "RETURNING push_id, worker",
                    bucket, name,
                )  # fmt: skip
                for row in kicked:
                    await self._notify(
                        conn, kind="kick", push_id=row["push_id"], worker=row["worker"],
                        bucket=bucket, channel=name,
                    )  # fmt: skip
            await self._notify(conn, kind="channel", bucket=bucket, channel=name)

    async def delete_channel(self, bucket: str, name: str) -> None:
        async with self._tx() as conn:
            await self._lock_channel(conn, bucket, name)
            if await self._running_push_id(conn, bucket, name) is not None:
                raise still_live(name)
            done = await conn.execute(
                "DELETE FROM channels WHERE bucket = $1 AND name = $2", bucket, name
            )
            if done == "DELETE 0":
                raise no_channel(name)
            # its history goes with it (a re-created channel starts afresh); segments stay
            await conn.execute(
                "DELETE FROM pushes WHERE bucket = $1 AND channel = $2", bucket, name
            )
            await self._notify(conn, kind="channel", bucket=bucket, channel=name)

    @staticmethod
    async def _lock_channel(conn: Any, bucket: str, name: str) -> Any:
        """Lock the channel's row for this transaction; return its status (None: no row)."""
        return await conn.fetchval(
            "SELECT status FROM channels WHERE bucket = $1 AND name = $2 FOR UPDATE",
            bucket, name,
        )  # fmt: skip

    @staticmethod
    async def _running_push_id(conn: Any, bucket: str, channel: str) -> int | None:
        value = await conn.fetchval(
            "SELECT push_id FROM pushes WHERE bucket = $1 AND channel = $2 AND end_ms IS NULL",
            bucket, channel,
        )  # fmt: skip
        return None if value is None else int(value)

    @staticmethod
    async def _notify(conn: Any, **fields: object) -> None:
        """Queue a notice; PostgreSQL delivers it to every listener when the transaction
        commits (and never if it rolls back)."""
        await conn.execute("SELECT pg_notify($1, $2)", NOTICE_CHANNEL, notice_payload(**fields))

    # --- pushes -------------------------------------------------------------------------
    async def start_push(
        self, bucket: str, channel: str, remote_addr: str, worker: str, now_ms: int,
        owner_url: str = "",
    ) -> Push:  # fmt: skip
        async with self._tx() as conn:
            status = await self._lock_channel(conn, bucket, channel)
            if status is None:
                raise no_channel(channel)
            if status == ChannelStatus.DISABLED.value:
                raise LiveChannelDisabled("the live channel is disabled", ChannelName=channel)
            if await self._running_push_id(conn, bucket, channel) is not None:
                raise still_live(channel)
            row = await conn.fetchrow(
                "INSERT INTO pushes (bucket, channel, remote_addr, start_ms, worker, "
                "heartbeat_ms, stats_json, owner_url) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) "
                f"RETURNING {PUSH_COLUMNS}",
                bucket, channel, remote_addr, now_ms, worker, now_ms, INITIAL_STATS_JSON,
                owner_url,
            )  # fmt: skip
        return push_from_row(row)

    async def heartbeat(self, push_id: int, now_ms: int, stats_json: str) -> Push | None:
        async with self._conn() as conn:
            row = await conn.fetchrow(
                "UPDATE pushes SET heartbeat_ms = $1, stats_json = $2 "
                f"WHERE push_id = $3 AND end_ms IS NULL RETURNING {PUSH_COLUMNS}",
                now_ms, stats_json, push_id,
            )  # fmt: skip
        return None if row is None else push_from_row(row)

    async def heartbeat_many(
        self, beats: Sequence[tuple[int, str]], now_ms: int
    ) -> dict[int, Push]:
        if not beats:
            return {}
        ordered = sorted(dict(beats).items())  # rows locked in one order: no deadlock
        async with self._conn() as conn:
            # One statement for all of this node's pushes, however many.
            rows = await conn.fetch(
                "UPDATE pushes SET heartbeat_ms = $1, stats_json = b.stats "
                "FROM unnest($2::bigint[], $3::text[]) AS b(id, stats) "
                f"WHERE push_id = b.id AND end_ms IS NULL RETURNING {_qualified_push()}",
                now_ms, [i for i, _ in ordered], [s for _, s in ordered],
            )  # fmt: skip
        return {row["push_id"]: push_from_row(row) for row in rows}

    async def running_pushes(self, push_ids: Sequence[int]) -> dict[int, bool]:
        if not push_ids:
            return {}
        async with self._conn() as conn:
            rows = await conn.fetch(
                "SELECT push_id, kick FROM pushes WHERE push_id = ANY($1::bigint[]) "
                "AND end_ms IS NULL",
                list(push_ids),
            )
        return {row["push_id"]: row["kick"] for row in rows}

    async def end_push(self, push_id: int, end_ms: int) -> None:
        async with self._conn() as conn:
            await conn.execute(
                "UPDATE pushes SET end_ms = greatest($1, start_ms) "
                "WHERE push_id = $2 AND end_ms IS NULL",
                end_ms, push_id,
            )  # fmt: skip

    async def live_push(self, bucket: str, channel: str) -> Push | None:
        async with self._conn() as conn:
            row = await conn.fetchrow(
                f"SELECT {PUSH_COLUMNS} FROM pushes "
                "WHERE bucket = $1 AND channel = $2 AND end_ms IS NULL",
                bucket, channel,
            )  # fmt: skip
        return None if row is None else push_from_row(row)

    async def history(self, bucket: str, channel: str, limit: int) -> list[Push]:
        async with self._conn() as conn:
            rows = await conn.fetch(
                f"SELECT {PUSH_COLUMNS} FROM pushes "
                "WHERE bucket = $1 AND channel = $2 AND end_ms IS NOT NULL "
                "ORDER BY start_ms DESC, push_id DESC LIMIT $3",
                bucket, channel, max(limit, 0),
            )  # fmt: skip
        return [push_from_row(row) for row in rows]

    async def running_workers(self) -> dict[str, int]:
        async with self._conn() as conn:
            rows = await conn.fetch(
                "SELECT worker, max(heartbeat_ms) AS latest FROM pushes "
                "WHERE end_ms IS NULL GROUP BY worker"
            )
        return {row["worker"]: row["latest"] for row in rows}

    async def close_stale_pushes(
        self, stale_before_ms: int, workers: Collection[str]
    ) -> list[Push]:
        names = sorted(workers)
        if not names:
            return []
        return await self._close_running(
            "heartbeat_ms < $1 AND worker = ANY($2::text[])", stale_before_ms, names
        )

    async def close_worker_pushes(self, worker: str) -> list[Push]:
        return await self._close_running("worker = $1", worker)

    async def _close_running(self, condition: str, *params: object) -> list[Push]:
        """End matching running pushes at their last heartbeat, in one statement."""
        async with self._conn() as conn:
            rows = await conn.fetch(
                "UPDATE pushes SET end_ms = greatest(heartbeat_ms, start_ms) "
                f"WHERE end_ms IS NULL AND {condition} RETURNING {PUSH_COLUMNS}",
                *params,
            )
        return sorted((push_from_row(row) for row in rows), key=lambda p: p.push_id)

    # --- segment index ------------------------------------------------------------------
    async def add_segment(self, segment: Segment) -> None:
        async with self._conn() as conn:
            # ON CONFLICT DO NOTHING covers both the (bucket, channel, seq) key and the
            # unique object key: a retried write inserts nothing and is no error.
            inserted = await conn.fetchval(
                f"INSERT INTO segments ({SEGMENT_COLUMNS}) "
                "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) "
                "ON CONFLICT DO NOTHING RETURNING 1",
                *_segment_args(segment),
            )
            if inserted is not None:
                return
            rows = await conn.fetch(
                f"SELECT {SEGMENT_COLUMNS} FROM segments WHERE bucket = $1 "
                "AND ((channel = $2 AND seq = $3) OR key = $4)",
                segment.bucket, segment.channel, segment.seq, segment.key,
            )  # fmt: skip
        if any(segment_from_row(row) != segment for row in rows):
            raise SegmentConflict(f"seq {segment.seq} or key {segment.key!r} is taken")

    async def last_segments(self, bucket: str, channel: str, count: int) -> list[Segment]:
        async with self._conn() as conn:
            rows = await conn.fetch(
                f"SELECT {SEGMENT_COLUMNS} FROM segments WHERE bucket = $1 AND channel = $2 "
                "ORDER BY seq DESC LIMIT $3",
                bucket, channel, max(count, 0),
            )  # fmt: skip
        return [segment_from_row(row) for row in reversed(rows)]

    async def segments_between(
        self, bucket: str, channel: str, start_ms: int, end_ms: int
    ) -> list[Segment]:
        async with self._conn() as conn:
            rows = await conn.fetch(
                f"SELECT {SEGMENT_COLUMNS} FROM segments WHERE bucket = $1 AND channel = $2 "
                "AND start_ms BETWEEN $3 AND $4 ORDER BY start_ms, seq",
                bucket, channel, start_ms, end_ms,
            )  # fmt: skip
        return [segment_from_row(row) for row in rows]

    async def discontinuities_before(self, bucket: str, channel: str, seq: int) -> int:
        async with self._conn() as conn:
            value = await conn.fetchval(
                "SELECT (SELECT count(*) FROM segments WHERE bucket = $1 AND channel = $2 "
                "AND seq < $3 AND discontinuity) + (SELECT count(*) FROM "
                "removed_discontinuities WHERE bucket = $1 AND channel = $2 AND seq < $3)",
                bucket, channel, seq,
            )  # fmt: skip
        return int(value)

    async def delete_segments(self, bucket: str, channel: str, seqs: Sequence[int]) -> int:
        wanted = sorted(set(seqs))
        if not wanted:
            return 0
        async with self._tx() as conn:
            await conn.execute(
                "INSERT INTO removed_discontinuities (bucket, channel, seq) "
                "SELECT bucket, channel, seq FROM segments WHERE bucket = $1 AND channel = $2 "
                "AND seq = ANY($3::bigint[]) AND discontinuity ON CONFLICT DO NOTHING",
                bucket, channel, wanted,
            )  # fmt: skip
            done = await conn.execute(
                "DELETE FROM segments WHERE bucket = $1 AND channel = $2 "
                "AND seq = ANY($3::bigint[])",
                bucket, channel, wanted,
            )  # fmt: skip
        return int(done.split()[-1])


async def _keep_session(conn: Any) -> None:
    """What a pooled connection needs when it goes back to the pool: nothing. asyncpg's
    default reset sends four statements (unlock advisory locks, CLOSE ALL, UNLISTEN *, RESET
    ALL) on every release, which pg_stat_statements showed to be 4x our own statements; our
    pooled sessions take no session locks, never LISTEN (postgres_notices.py has its own
    connection), keep no cursors and set nothing."""


def _qualified_push() -> str:
    """PUSH_COLUMNS of the `pushes` table, unambiguous beside a joined row set."""
    return ", ".join(f"pushes.{c.strip()}" for c in PUSH_COLUMNS.split(","))


def _segment_args(segment: Segment) -> list[object]:
    row = list(segment_to_row(segment))
    row[SEGMENT_DISCONTINUITY] = segment.discontinuity  # a BOOLEAN column (SQLite: 0/1)
    return row
