"""The PostgreSQL schema of the metadata store, its version, and how it is migrated.

The same tables as the SQLite store (sqlite_schema.py), in PostgreSQL's types. Names compare
as bytes (`COLLATE "C"`), the order OSS lists in, whatever the database's locale.

The version lives in `livechannel_schema`. Every node runs `migrate` at start; they may start
at once, so migration runs in one transaction under a transaction-level advisory lock: the
first node migrates, the others wait for it and then find the version current. A database
newer than this code is refused rather than misread; migrations append to MIGRATIONS.
"""

from __future__ import annotations

from typing import Any

from livechannel.errors import StorageError

# Advisory lock keys (one 64-bit namespace per database): arbitrary constants that other
# applications sharing the database are unlikely to pick (ASCII "LCMIGRAT", "LCLEADER").
MIGRATION_LOCK_KEY = 0x4C434D4947524154
LEADER_LOCK_KEY = 0x4C434C4541444552  # held by the worker that runs cluster-wide jobs

MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE buckets (
        name TEXT COLLATE "C" PRIMARY KEY,
        acl TEXT NOT NULL,
        created_ms BIGINT NOT NULL
    );
    CREATE TABLE channels (
        bucket TEXT COLLATE "C" NOT NULL,
        name TEXT COLLATE "C" NOT NULL,
        description TEXT NOT NULL,
        status TEXT NOT NULL,
        frag_duration_s INTEGER NOT NULL,
        frag_count INTEGER NOT NULL,
        playlist_name TEXT NOT NULL,
        snapshot_role_name TEXT,
        snapshot_dest_bucket TEXT,
        snapshot_notify_topic TEXT,
        snapshot_interval_s INTEGER,
        last_modified_ms BIGINT NOT NULL,
        PRIMARY KEY (bucket, name)
    );
    CREATE TABLE pushes (
        push_id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        bucket TEXT COLLATE "C" NOT NULL,
        channel TEXT COLLATE "C" NOT NULL,
        remote_addr TEXT NOT NULL,
        start_ms BIGINT NOT NULL,
        end_ms BIGINT,
        worker TEXT NOT NULL,
        heartbeat_ms BIGINT NOT NULL,
        kick BOOLEAN NOT NULL DEFAULT false,
        stats_json TEXT NOT NULL
    );
    CREATE UNIQUE INDEX pushes_one_running ON pushes (bucket, channel) WHERE end_ms IS NULL;
    CREATE INDEX pushes_history ON pushes (bucket, channel, start_ms);
    CREATE INDEX pushes_running_worker ON pushes (worker) WHERE end_ms IS NULL;
    CREATE TABLE segments (
        bucket TEXT COLLATE "C" NOT NULL,
        channel TEXT COLLATE "C" NOT NULL,
        seq BIGINT NOT NULL,
        key TEXT COLLATE "C" NOT NULL,
        start_ms BIGINT NOT NULL,
        duration_ms BIGINT NOT NULL,
        size BIGINT NOT NULL,
        push_id BIGINT NOT NULL,
        discontinuity BOOLEAN NOT NULL,
        PRIMARY KEY (bucket, channel, seq)
    );
    CREATE UNIQUE INDEX segments_key ON segments (bucket, key);
    CREATE INDEX segments_time ON segments (bucket, channel, start_ms);
    CREATE INDEX segments_discontinuities ON segments (bucket, channel, seq) WHERE discontinuity;
    CREATE TABLE removed_discontinuities (
        bucket TEXT COLLATE "C" NOT NULL,
        channel TEXT COLLATE "C" NOT NULL,
        seq BIGINT NOT NULL,
        PRIMARY KEY (bucket, channel, seq)
    );
    """,
    # 2: fMP4 segments, as SQLite's migration 3: a channel's segment format (NULL: the
    # bucket's), a segment's init section key ('' for MPEG-TS).
    """
    ALTER TABLE channels ADD COLUMN segment_format TEXT;
    ALTER TABLE segments ADD COLUMN init_key TEXT NOT NULL DEFAULT '';
    """,
    # 3: as SQLite's migration 4: where players reach a push's owner for LL-HLS.
    """
    ALTER TABLE pushes ADD COLUMN owner_url TEXT NOT NULL DEFAULT '';
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)


async def migrate(conn: Any, where: str) -> None:
    """Bring the database to SCHEMA_VERSION (asyncpg connection; idempotent, concurrent-safe)."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK_KEY)
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS livechannel_schema (version INTEGER NOT NULL)"
        )
        found = await conn.fetchval("SELECT max(version) FROM livechannel_schema") or 0
        if found > SCHEMA_VERSION:
            raise StorageError(
                f"metadata store {where} has schema version {found}; this program knows up "
                f"to {SCHEMA_VERSION}",
                permanent=True,
            )
        if found == SCHEMA_VERSION:
            return
        for script in MIGRATIONS[found:]:
            await conn.execute(script)  # several statements: the simple query protocol
        await conn.execute("DELETE FROM livechannel_schema")
        await conn.execute("INSERT INTO livechannel_schema VALUES ($1)", SCHEMA_VERSION)
