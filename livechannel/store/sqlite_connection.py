"""Opening the SQLite metadata database: pragmas for several processes, migrations, errors.

WAL lets readers run beside the one writer; `synchronous=NORMAL` in WAL mode survives process
crashes (it fsyncs at checkpoints only, so a power cut may lose the last transactions but never
corrupts the file); the busy timeout makes a writer wait for another process's transaction
instead of failing at once.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

from livechannel.errors import StorageError
from livechannel.store.sqlite_schema import SCHEMA_VERSION, migration_statements

BUSY_TIMEOUT_S = 5.0  # longest another process holds the write lock is ~ms; 5 s means "stuck"
# Primary SQLite result codes that will not go away by retrying (the rest, e.g. BUSY, FULL,
# IOERR, may): read-only or unopenable file, permission, corruption, not a database.
PERMANENT_SQLITE_CODES = frozenset(
    {
        sqlite3.SQLITE_READONLY,
        sqlite3.SQLITE_CANTOPEN,
        sqlite3.SQLITE_PERM,
        sqlite3.SQLITE_CORRUPT,
        sqlite3.SQLITE_NOTADB,
        sqlite3.SQLITE_AUTH,
    }
)
_PRIMARY_CODE_MASK = 0xFF  # extended result codes carry the primary code in the low byte


@contextmanager
def write_transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """Take the write lock up front (IMMEDIATE), so a check and its write are one step."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def storage_error(e: sqlite3.Error, path: str) -> StorageError:
    """Map an SQLite failure by its result code: retryable unless retrying cannot help."""
    code = getattr(e, "sqlite_errorcode", 0) & _PRIMARY_CODE_MASK
    name = getattr(e, "sqlite_errorname", type(e).__name__)
    return StorageError(
        f"metadata store {path!r}: {e} ({name})", permanent=code in PERMANENT_SQLITE_CODES
    )


def connect(path: str) -> sqlite3.Connection:
    """Open `path`, creating or migrating its schema. Use the connection on one thread."""
    # isolation_level=None: no implicit transactions; writers BEGIN IMMEDIATE explicitly.
    conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
    try:
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        _migrate(conn, path)
    except BaseException:
        conn.close()
        raise
    return conn


def _migrate(conn: sqlite3.Connection, path: str) -> None:
    def version() -> int:
        return int(conn.execute("PRAGMA user_version").fetchone()[0])

    if version() == SCHEMA_VERSION:
        return
    with write_transaction(conn):
        found = version()  # again, under the lock: another process may have migrated
        if found > SCHEMA_VERSION:
            raise StorageError(
                f"metadata store {path!r} has schema version {found}; this program knows up "
                f"to {SCHEMA_VERSION}",
                permanent=True,
            )
        for statement in migration_statements(found):
            conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
