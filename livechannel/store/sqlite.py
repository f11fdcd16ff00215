"""The SQLite MetadataStore: one database file shared by every ingest worker on a machine.

Several *processes* open the same file (sqlite_connection: WAL, synchronous, busy timeout).
Cross-process rules live in the database: a partial unique index allows one running push per
channel, and every check-then-write runs in one `BEGIN IMMEDIATE` transaction (it takes the
write lock first, so no other process can slip in between the check and the write).

Each call runs on one dedicated thread that owns the connection: statements are short, but a
busy wait for another process's lock must not stall the event loop.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from livechannel.errors import (
    LiveChannelDisabled,
    no_bucket,
    no_channel,
    still_live,
)
from livechannel.store.base import (
    Acl,
    Bucket,
    Channel,
    ChannelConfig,
    ChannelStatus,
    Push,
    Segment,
)
from livechannel.store.conflicts import SegmentConflict
from livechannel.store.memory import INITIAL_STATS_JSON
from livechannel.store.sqlite_connection import connect, storage_error, write_transaction
from livechannel.store.sqlite_schema import (
    CHANNEL_COLUMNS,
    PUSH_COLUMNS,
    SEGMENT_COLUMNS,
    bucket_from_row,
    channel_from_row,
    channel_to_row,
    push_from_row,
    segment_from_row,
    segment_to_row,
)

T = TypeVar("T")
DELETE_BATCH = 500  # seqs per statement: under SQLite's default limit of 999 parameters


def _bucket_exists(conn: sqlite3.Connection, name: str) -> bool:
    return conn.execute("SELECT 1 FROM buckets WHERE name = ?", (name,)).fetchone() is not None


def _running_push_id(conn: sqlite3.Connection, bucket: str, channel: str) -> int | None:
    row = conn.execute(
        "SELECT push_id FROM pushes WHERE bucket = ? AND channel = ? AND end_ms IS NULL",
        (bucket, channel),
    ).fetchone()
    return None if row is None else int(row[0])


class SqliteStore:
    def __init__(self, path: str) -> None:
        self.path = path
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-store")
        self._conn: sqlite3.Connection | None = None  # created and used on that one thread

    @classmethod
    async def open(cls, path: str) -> SqliteStore:
        """Open (creating or migrating) the database now, so a bad path fails at startup."""
        store = cls(path)
        try:
            await store._run(lambda conn: None)
        except BaseException:
            await store.close()
            raise
        return store

    async def _run(self, op: Callable[[sqlite3.Connection], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, self._call, op)

    def _call(self, op: Callable[[sqlite3.Connection], T]) -> T:
        try:
            if self._conn is None:
                self._conn = connect(self.path)
            return op(self._conn)
        except sqlite3.Error as e:
            raise storage_error(e, self.path) from e

    async def close(self) -> None:
        def close(conn: sqlite3.Connection) -> None:
            conn.close()
            self._conn = None

        try:
            if self._conn is not None:
                await self._run(close)
        finally:
            self._executor.shutdown(wait=False)

    # --- buckets ------------------------------------------------------------------------
    async def ensure_bucket(self, name: str, acl: Acl, now_ms: int) -> Bucket:
        def op(conn: sqlite3.Connection) -> Bucket:
            with write_transaction(conn):
                conn.execute(
                    "INSERT OR IGNORE INTO buckets (name, acl, created_ms) VALUES (?, ?, ?)",
                    (name, acl.value, now_ms),
                )
                row = conn.execute("SELECT * FROM buckets WHERE name = ?", (name,)).fetchone()
            return bucket_from_row(row)

        return await self._run(op)

    async def get_bucket(self, name: str) -> Bucket | None:
        def op(conn: sqlite3.Connection) -> Bucket | None:
            row = conn.execute("SELECT * FROM buckets WHERE name = ?", (name,)).fetchone()
            return None if row is None else bucket_from_row(row)

        return await self._run(op)

    async def list_buckets(self) -> list[Bucket]:
        def op(conn: sqlite3.Connection) -> list[Bucket]:
            rows = conn.execute("SELECT * FROM buckets ORDER BY name").fetchall()
            return [bucket_from_row(row) for row in rows]

        return await self._run(op)

    async def set_bucket_acl(self, name: str, acl: Acl) -> None:
        def op(conn: sqlite3.Connection) -> None:
            cur = conn.execute("UPDATE buckets SET acl = ? WHERE name = ?", (acl.value, name))
            if cur.rowcount == 0:
                raise no_bucket(name)

        await self._run(op)

    # --- channels -----------------------------------------------------------------------
    async def put_channel(
        self, bucket: str, name: str, config: ChannelConfig, now_ms: int
    ) -> Channel:
        def op(conn: sqlite3.Connection) -> Channel:
            with write_transaction(conn):
                if not _bucket_exists(conn, bucket):
                    raise no_bucket(bucket)
                if _running_push_id(conn, bucket, name) is not None:
                    raise still_live(name)
                conn.execute(
                    f"INSERT OR REPLACE INTO channels ({CHANNEL_COLUMNS}) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    channel_to_row(bucket, name, config, now_ms),
                )
            return Channel(bucket=bucket, name=name, config=config, last_modified_ms=now_ms)

        return await self._run(op)

    async def get_channel(self, bucket: str, name: str) -> Channel | None:
        def op(conn: sqlite3.Connection) -> Channel | None:
            row = conn.execute(
                f"SELECT {CHANNEL_COLUMNS} FROM channels WHERE bucket = ? AND name = ?",
                (bucket, name),
            ).fetchone()
            return None if row is None else channel_from_row(row)

        return await self._run(op)

    async def list_channels(
        self, bucket: str, prefix: str, marker: str, limit: int
    ) -> list[Channel]:
        def op(conn: sqlite3.Connection) -> list[Channel]:
            if not _bucket_exists(conn, bucket):
                raise no_bucket(bucket)
            # TEXT compares as memcmp of UTF-8 (BINARY collation): the order OSS lists in.
            rows = conn.execute(
                f"SELECT {CHANNEL_COLUMNS} FROM channels WHERE bucket = ? AND name > ? "
                "AND name >= ? AND substr(name, 1, length(?)) = ? ORDER BY name LIMIT ?",
                (bucket, marker, prefix, prefix, prefix, max(limit, 0)),
            ).fetchall()
            return [channel_from_row(row) for row in rows]

        return await self._run(op)

    async def set_channel_status(
        self, bucket: str, name: str, status: ChannelStatus, now_ms: int
    ) -> None:
        def op(conn: sqlite3.Connection) -> None:
            with write_transaction(conn):
                cur = conn.execute(
                    "UPDATE channels SET status = ?, last_modified_ms = ? "
                    "WHERE bucket = ? AND name = ?",
                    (status.value, now_ms, bucket, name),
                )
                if cur.rowcount == 0:
                    raise no_channel(name)
                if status is ChannelStatus.DISABLED:
                    conn.execute(
                        "UPDATE pushes SET kick = 1 "
                        "WHERE bucket = ? AND channel = ? AND end_ms IS NULL",
                        (bucket, name),
                    )

        await self._run(op)

    async def delete_channel(self, bucket: str, name: str) -> None:
        def op(conn: sqlite3.Connection) -> None:
            with write_transaction(conn):
                if _running_push_id(conn, bucket, name) is not None:
                    raise still_live(name)
                cur = conn.execute(
                    "DELETE FROM channels WHERE bucket = ? AND name = ?", (bucket, name)
                )
                if cur.rowcount == 0:
                    raise no_channel(name)
                # its history goes with it (a re-created channel starts afresh); segments stay
                conn.execute("DELETE FROM pushes WHERE bucket = ? AND channel = ?", (bucket, name))

        await self._run(op)

    # --- pushes -------------------------------------------------------------------------
    async def start_push(
        self, bucket: str, channel: str, remote_addr: str, worker: str, now_ms: int,
        owner_url: str = "",
    ) -> Push:  # fmt: skip
        values = (bucket, channel, remote_addr, now_ms, worker, now_ms, INITIAL_STATS_JSON,
                  owner_url)  # fmt: skip

        def op(conn: sqlite3.Connection) -> Push:
            with write_transaction(conn):
                row = conn.execute(
                    "SELECT status FROM channels WHERE bucket = ? AND name = ?",
                    (bucket, channel),
                ).fetchone()
                if row is None:
                    raise no_channel(channel)
                if row[0] == ChannelStatus.DISABLED.value:
                    raise LiveChannelDisabled("the live channel is disabled", ChannelName=channel)
                try:
                    rows = conn.execute(
                        "INSERT INTO pushes (bucket, channel, remote_addr, start_ms, worker, "
                        "heartbeat_ms, stats_json, owner_url) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
                        f"RETURNING {PUSH_COLUMNS}",
                        values,
                    ).fetchall()
                except sqlite3.IntegrityError:
                    raise still_live(channel) from None  # pushes_one_running said no
            return push_from_row(rows[0])

        return await self._run(op)

    async def heartbeat(self, push_id: int, now_ms: int, stats_json: str) -> Push | None:
        def op(conn: sqlite3.Connection) -> Push | None:
            rows = conn.execute(
                "UPDATE pushes SET heartbeat_ms = ?, stats_json = ? "
                f"WHERE push_id = ? AND end_ms IS NULL RETURNING {PUSH_COLUMNS}",
                (now_ms, stats_json, push_id),
            ).fetchall()
            return push_from_row(rows[0]) if rows else None

        return await self._run(op)

    async def heartbeat_many(
        self, beats: Sequence[tuple[int, str]], now_ms: int
    ) -> dict[int, Push]:
        def op(conn: sqlite3.Connection) -> dict[int, Push]:
            out: dict[int, Push] = {}
            with write_transaction(conn):
                for push_id, stats_json in beats:
                    rows = conn.execute(
                        "UPDATE pushes SET heartbeat_ms = ?, stats_json = ? "
                        f"WHERE push_id = ? AND end_ms IS NULL RETURNING {PUSH_COLUMNS}",
                        (now_ms, stats_json, push_id),
                    ).fetchall()
                    if rows:
                        out[push_id] = push_from_row(rows[0])
            return out

        return await self._run(op) if beats else {}

    async def running_pushes(self, push_ids: Sequence[int]) -> dict[int, bool]:
        def op(conn: sqlite3.Connection) -> dict[int, bool]:
            # One parameter whatever the count (json_each), by primary key.
            rows = conn.execute(
                "SELECT push_id, kick FROM pushes "
                "WHERE push_id IN (SELECT value FROM json_each(?)) AND end_ms IS NULL",
                (json.dumps(list(push_ids)),),
            ).fetchall()
            return {push_id: bool(kick) for push_id, kick in rows}

        return await self._run(op) if push_ids else {}

    async def end_push(self, push_id: int, end_ms: int) -> None:
        def op(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE pushes SET end_ms = max(?, start_ms) WHERE push_id = ? AND end_ms IS NULL",
                (end_ms, push_id),
            )

        await self._run(op)

    async def live_push(self, bucket: str, channel: str) -> Push | None:
        def op(conn: sqlite3.Connection) -> Push | None:
            row = conn.execute(
                f"SELECT {PUSH_COLUMNS} FROM pushes "
                "WHERE bucket = ? AND channel = ? AND end_ms IS NULL",
                (bucket, channel),
            ).fetchone()
            return None if row is None else push_from_row(row)

        return await self._run(op)

    async def history(self, bucket: str, channel: str, limit: int) -> list[Push]:
        def op(conn: sqlite3.Connection) -> list[Push]:
            rows = conn.execute(
                f"SELECT {PUSH_COLUMNS} FROM pushes "
                "WHERE bucket = ? AND channel = ? AND end_ms IS NOT NULL "
                "ORDER BY start_ms DESC, push_id DESC LIMIT ?",
                (bucket, channel, max(limit, 0)),
            ).fetchall()
            return [push_from_row(row) for row in rows]

        return await self._run(op)

    async def running_workers(self) -> dict[str, int]:
        def op(conn: sqlite3.Connection) -> dict[str, int]:
            rows = conn.execute(
                "SELECT worker, max(heartbeat_ms) FROM pushes WHERE end_ms IS NULL GROUP BY worker"
            ).fetchall()
            return {worker: heartbeat_ms for worker, heartbeat_ms in rows}

        return await self._run(op)

    async def close_stale_pushes(
        self, stale_before_ms: int, workers: Collection[str]
    ) -> list[Push]:
        names = sorted(workers)
        if not names:
            return []
        marks = ", ".join("?" * len(names))
        return await self._close_running(
            f"heartbeat_ms < ? AND worker IN ({marks})", stale_before_ms, *names
        )

    async def close_worker_pushes(self, worker: str) -> list[Push]:
        return await self._close_running("worker = ?", worker)

    async def _close_running(self, condition: str, *params: object) -> list[Push]:
        """End matching running pushes at their last heartbeat, in one statement."""

        def op(conn: sqlite3.Connection) -> list[Push]:
            rows = conn.execute(
                "UPDATE pushes SET end_ms = max(heartbeat_ms, start_ms) "
                f"WHERE end_ms IS NULL AND {condition} RETURNING {PUSH_COLUMNS}",
                params,
            ).fetchall()
            return sorted((push_from_row(row) for row in rows), key=lambda p: p.push_id)

        return await self._run(op)

    # --- segment index ------------------------------------------------------------------
    async def add_segment(self, segment: Segment) -> None:
        def op(conn: sqlite3.Connection) -> None:
            try:
                conn.execute(
                    f"INSERT INTO segments ({SEGMENT_COLUMNS}) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    segment_to_row(segment),
                )
                return
            except sqlite3.IntegrityError:
                pass
            rows = conn.execute(
                f"SELECT {SEGMENT_COLUMNS} FROM segments WHERE bucket = ? "
                "AND ((channel = ? AND seq = ?) OR key = ?)",
                (segment.bucket, segment.channel, segment.seq, segment.key),
            ).fetchall()
            if any(segment_from_row(row) != segment for row in rows):
                raise SegmentConflict(f"seq {segment.seq} or key {segment.key!r} is taken")
            # else: the very same segment again (a retried write) - nothing to do

        await self._run(op)

    async def last_segments(self, bucket: str, channel: str, count: int) -> list[Segment]:
        def op(conn: sqlite3.Connection) -> list[Segment]:
            rows = conn.execute(
                f"SELECT {SEGMENT_COLUMNS} FROM segments WHERE bucket = ? AND channel = ? "
                "ORDER BY seq DESC LIMIT ?",
                (bucket, channel, max(count, 0)),
            ).fetchall()
            return [segment_from_row(row) for row in reversed(rows)]

        return await self._run(op)

    async def segments_between(
        self, bucket: str, channel: str, start_ms: int, end_ms: int
    ) -> list[Segment]:
        def op(conn: sqlite3.Connection) -> list[Segment]:
            rows = conn.execute(
                f"SELECT {SEGMENT_COLUMNS} FROM segments WHERE bucket = ? AND channel = ? "
                "AND start_ms BETWEEN ? AND ? ORDER BY start_ms, seq",
                (bucket, channel, start_ms, end_ms),
            ).fetchall()
            return [segment_from_row(row) for row in rows]

        return await self._run(op)

    async def discontinuities_before(self, bucket: str, channel: str, seq: int) -> int:
        def op(conn: sqlite3.Connection) -> int:
            row = conn.execute(
                "SELECT (SELECT count(*) FROM segments WHERE bucket = ? AND channel = ? "
                "AND seq < ? AND discontinuity) + (SELECT count(*) FROM removed_discontinuities "
                "WHERE bucket = ? AND channel = ? AND seq < ?)",
                (bucket, channel, seq, bucket, channel, seq),
            ).fetchone()
            return int(row[0])

        return await self._run(op)

    async def delete_segments(self, bucket: str, channel: str, seqs: Sequence[int]) -> int:
        wanted = sorted(set(seqs))

        def op(conn: sqlite3.Connection) -> int:
            removed = 0
            with write_transaction(conn):
                for start in range(0, len(wanted), DELETE_BATCH):
                    batch = wanted[start : start + DELETE_BATCH]
                    marks = ", ".join("?" * len(batch))
                    where = f"bucket = ? AND channel = ? AND seq IN ({marks})"
                    conn.execute(
                        "INSERT OR IGNORE INTO removed_discontinuities (bucket, channel, seq) "
                        f"SELECT bucket, channel, seq FROM segments WHERE {where} "
                        "AND discontinuity",
                        (bucket, channel, *batch),
                    )
                    removed += conn.execute(
                        f"DELETE FROM segments WHERE {where}", (bucket, channel, *batch)
                    ).rowcount
            return removed

        return await self._run(op)
