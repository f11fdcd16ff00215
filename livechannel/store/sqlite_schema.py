"""The SQLite schema of the metadata store, its version, and row <-> record mapping.

The version lives in `PRAGMA user_version` (0 = empty file). A newer file than this code
understands is refused rather than misread; migrations append to MIGRATIONS.
"""

from __future__ import annotations

import sqlite3

from livechannel.store.base import (
    Acl,
    Bucket,
    Channel,
    ChannelConfig,
    ChannelStatus,
    Push,
    Segment,
    SegmentFormat,
    Snapshot,
)

# Each entry moves the schema from version i to i + 1: statements separated by ";" (keep ";"
# out of the comments), run one by one inside one transaction (executescript would commit).
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE buckets (
        name TEXT PRIMARY KEY,
        acl TEXT NOT NULL,
        created_ms INTEGER NOT NULL
    );
    CREATE TABLE channels (
        bucket TEXT NOT NULL,
        name TEXT NOT NULL,
        description TEXT NOT NULL,
        status TEXT NOT NULL,
        frag_duration_s INTEGER NOT NULL,
        frag_count INTEGER NOT NULL,
        playlist_name TEXT NOT NULL,
        snapshot_role_name TEXT,  -- all four NULL when the channel has no Snapshot
        snapshot_dest_bucket TEXT,
        snapshot_notify_topic TEXT,
        snapshot_interval_s INTEGER,
        last_modified_ms INTEGER NOT NULL,
        PRIMARY KEY (bucket, name)
    );
    CREATE TABLE pushes (
        push_id INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused: owners address pushes by id
        bucket TEXT NOT NULL,
        channel TEXT NOT NULL,
        remote_addr TEXT NOT NULL,
        start_ms INTEGER NOT NULL,
        end_ms INTEGER,  -- NULL while the push runs
        worker TEXT NOT NULL,
        heartbeat_ms INTEGER NOT NULL,
        kick INTEGER NOT NULL DEFAULT 0,
        stats_json TEXT NOT NULL
    );
    -- One running push per channel, enforced by the database across processes.
    CREATE UNIQUE INDEX pushes_one_running ON pushes (bucket, channel) WHERE end_ms IS NULL;
    CREATE INDEX pushes_history ON pushes (bucket, channel, start_ms);
    CREATE INDEX pushes_running_worker ON pushes (worker) WHERE end_ms IS NULL;
    CREATE TABLE segments (
        bucket TEXT NOT NULL,
        channel TEXT NOT NULL,
        seq INTEGER NOT NULL,
        key TEXT NOT NULL,
        start_ms INTEGER NOT NULL,
        duration_ms INTEGER NOT NULL,
        size INTEGER NOT NULL,
        push_id INTEGER NOT NULL,
        discontinuity INTEGER NOT NULL,
        PRIMARY KEY (bucket, channel, seq)
    );
    CREATE UNIQUE INDEX segments_key ON segments (bucket, key);
    CREATE INDEX segments_time ON segments (bucket, channel, start_ms);
    CREATE INDEX segments_discontinuities ON segments (bucket, channel, seq) WHERE discontinuity;
    """,
    # 2: retention deletes segments; the discontinuities among them keep counting, so a live
    # playlist's EXT-X-DISCONTINUITY-SEQUENCE never goes back.
    """
    CREATE TABLE removed_discontinuities (
        bucket TEXT NOT NULL,
        channel TEXT NOT NULL,
        seq INTEGER NOT NULL,
        PRIMARY KEY (bucket, channel, seq)
    );
    """,
    # 3: fMP4 segments. A channel's segment format (NULL: the bucket's), a segment's init
    # section key ('' for MPEG-TS).
    """
    ALTER TABLE channels ADD COLUMN segment_format TEXT;
    ALTER TABLE segments ADD COLUMN init_key TEXT NOT NULL DEFAULT ''
    """,
    # 4: where players reach a push's owner for LL-HLS (its node's advertise_url; '' none).
    """
    ALTER TABLE pushes ADD COLUMN owner_url TEXT NOT NULL DEFAULT ''
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)


def migration_statements(version: int) -> list[str]:
    """The statements that bring a database at `version` up to SCHEMA_VERSION."""
    return [
        statement.strip()
        for script in MIGRATIONS[version:]
        for statement in script.split(";")
        if statement.strip()
    ]


CHANNEL_COLUMNS = (
    "bucket, name, description, status, frag_duration_s, frag_count, playlist_name, "
    "snapshot_role_name, snapshot_dest_bucket, snapshot_notify_topic, snapshot_interval_s, "
    "last_modified_ms, segment_format"
)
PUSH_COLUMNS = (
    "push_id, bucket, channel, remote_addr, start_ms, end_ms, worker, heartbeat_ms, kick, "
    "stats_json, owner_url"
)
SEGMENT_DISCONTINUITY = 8  # its index in SEGMENT_COLUMNS and segment_to_row
SEGMENT_COLUMNS = (
    "bucket, channel, seq, key, start_ms, duration_ms, size, push_id, discontinuity, init_key"
)


def bucket_from_row(row: sqlite3.Row) -> Bucket:
    return Bucket(name=row["name"], acl=Acl(row["acl"]), created_ms=row["created_ms"])


def channel_to_row(
    bucket: str, name: str, config: ChannelConfig, now_ms: int
) -> tuple[object, ...]:
    snap = config.snapshot
    return (
        bucket,
        name,
        config.description,
        config.status.value,
        config.frag_duration_s,
        config.frag_count,
        config.playlist_name,
        snap.role_name if snap else None,
        snap.dest_bucket if snap else None,
        snap.notify_topic if snap else None,
        snap.interval_s if snap else None,
        now_ms,
        config.segment_format.value if config.segment_format else None,
    )


def channel_from_row(row: sqlite3.Row) -> Channel:
    snapshot = None
    if row["snapshot_role_name"] is not None:
        snapshot = Snapshot(
            role_name=row["snapshot_role_name"],
            dest_bucket=row["snapshot_dest_bucket"],
            notify_topic=row["snapshot_notify_topic"],
            interval_s=row["snapshot_interval_s"],
        )
    config = ChannelConfig(
        description=row["description"],
        status=ChannelStatus(row["status"]),
        frag_duration_s=row["frag_duration_s"],
        frag_count=row["frag_count"],
        playlist_name=row["playlist_name"],
        snapshot=snapshot,
        segment_format=SegmentFormat(row["segment_format"]) if row["segment_format"] else None,
    )
    return Channel(
        bucket=row["bucket"],
        name=row["name"],
        config=config,
        last_modified_ms=row["last_modified_ms"],
    )


def push_from_row(row: sqlite3.Row) -> Push:
    return Push(
        push_id=row["push_id"],
        bucket=row["bucket"],
        channel=row["channel"],
        remote_addr=row["remote_addr"],
        start_ms=row["start_ms"],
        end_ms=row["end_ms"],
        worker=row["worker"],
        heartbeat_ms=row["heartbeat_ms"],
        kick=bool(row["kick"]),
        stats_json=row["stats_json"],
        owner_url=row["owner_url"],
    )


def segment_to_row(s: Segment) -> tuple[object, ...]:
    return (
        s.bucket,
        s.channel,
        s.seq,
        s.key,
        s.start_ms,
        s.duration_ms,
        s.size,
        s.push_id,
        int(s.discontinuity),
        s.init_key,
    )


def segment_from_row(row: sqlite3.Row) -> Segment:
    return Segment(
        bucket=row["bucket"],
        channel=row["channel"],
        seq=row["seq"],
        key=row["key"],
        start_ms=row["start_ms"],
        duration_ms=row["duration_ms"],
        size=row["size"],
        push_id=row["push_id"],
        discontinuity=bool(row["discontinuity"]),
        init_key=row["init_key"],
    )
