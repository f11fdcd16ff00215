"""Object storage: where segments and playlists live. One instance serves one bucket.

Keys are already validated object names ("<channel>/<name>"); implementations still refuse a
key that would leave the bucket (defence in depth). `put` is atomic: readers see the old
object or the new one, never a torn one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

# What `put` takes: one buffer, or the pieces of one object in order. A segment is built as
# one piece per frame; handing the pieces over saves joining them into a second copy of the
# segment (LocalStorage writes them with writev; a backend that needs one buffer joins).
Body = bytes | list[bytes]


def joined(data: Body) -> bytes:
    return b"".join(data) if isinstance(data, list) else data


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    key: str
    size: int
    etag: str  # quoted is added by the HTTP layer; this is the bare value
    last_modified_ms: int
    content_type: str


@dataclass(frozen=True, slots=True)
class ListResult:
    objects: list[ObjectInfo]
    common_prefixes: list[str]
    is_truncated: bool
    next_marker: str


class ObjectStorage(Protocol):
    async def put(self, key: str, data: Body, content_type: str) -> ObjectInfo: ...

    async def head(self, key: str) -> ObjectInfo | None: ...

    async def get(
        self, key: str, start: int = 0, end: int | None = None
    ) -> tuple[ObjectInfo, AsyncIterator[bytes]]:
        """Open the object; stream bytes [start, end) (end None = to the end) in bounded chunks.

        Raises NoSuchKey at once if absent. The caller checks the range against the size.
        """
        ...

    async def delete(self, key: str) -> bool:
        """True if something was deleted."""
        ...

    async def list(
        self, prefix: str, marker: str, max_keys: int, delimiter: str = ""
    ) -> ListResult: ...

    async def close(self) -> None: ...


def content_type_for(key: str) -> str:
    """OSS serves playlists and segments with these types (spec: Objects needed for playback)."""
    if key.endswith(".m3u8"):
        return "application/x-mpegURL"
    if key.endswith(".ts"):
        return "video/MP2T"
    if key.endswith((".m4s", ".mp4")):  # fMP4 segments and init sections (RFC 8216bis 3.1.2)
        return "video/mp4"
    return "application/octet-stream"
