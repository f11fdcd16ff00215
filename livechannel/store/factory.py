"""The metadata store a service runs on, chosen by its URL (Config.store).

"" or "sqlite:///path": SQLite, for the workers of one machine (the default is the file in the
data directory). "postgresql://...": PostgreSQL, shared by the nodes of many machines.
"""

from __future__ import annotations

from pathlib import Path

from livechannel.store.base import MetadataStore
from livechannel.store.postgres import PostgresStore
from livechannel.store.sqlite import SqliteStore

DB_FILE = "livechannel.db"  # the default SQLite file, in the data directory


def sqlite_path(url: str, data_dir: Path) -> Path | None:
    """The SQLite file `url` names (the default one for ""), or None for PostgreSQL."""
    if not url:
        return data_dir / DB_FILE
    if url.startswith("sqlite://"):
        return Path(url.removeprefix("sqlite://"))
    return None


async def open_store(url: str, data_dir: Path) -> MetadataStore:
    path = sqlite_path(url, data_dir)
    if path is not None:
        return await SqliteStore.open(str(path))
    return await PostgresStore.open(url)
