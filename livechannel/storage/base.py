"""Object storage: where segments and playlists live. One instance serves one bucket.

Keys are already validated object names ("<channel>/<name>"); implementations still refuse a
key that would leave the bucket (defence in depth). `put` is atomic: readers see the old
object or the new one, never a torn one. So is a `SegmentWriter` (`open_writer`): what it was
given becomes visible under its key, whole, only when `close` returns.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
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


class SegmentWriter(Protocol):
    """One object written as it grows (a segment while it is being cut), then made visible
    under its key at once by `close`. `write` is called on the event loop and never blocks:
    a backend hands the bytes to its own threads (local disk) or holds them until `close`
    (stores that take an object in one request)."""

    @property
    def pending_bytes(self) -> int:
        """Bytes given to `write` and not yet stored: what this writer holds in memory."""
        ...

    def write(self, pieces: list[bytes]) -> None:
        """Append `pieces` (in order). The writer takes the list's items, not the list."""
        ...

    async def close(self) -> ObjectInfo:
        """Store everything written and make it visible under the key. Raises StorageError
        on a fault; calling `close` again then retries from where it failed, nothing lost."""
        ...

    def abort(self) -> None:
        """Forget the object: nothing becomes visible, and whatever was stored on the way
        (a temp file) is removed in the background. Never raises."""
        ...


class ObjectStorage(Protocol):
    async def put(self, key: str, data: Body, content_type: str) -> ObjectInfo: ...

    def open_writer(self, key: str) -> SegmentWriter:
        """A writer for `key` (validated here: InvalidObjectName). Does no I/O."""
        ...

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


class HeldWriter:
    """The SegmentWriter of a store that takes an object in one request (memory, S3): the
    pieces are held until `close`, which puts them, and kept until a put succeeds, so a
    failed one can be retried."""

    __slots__ = ("_info", "_key", "_pieces", "_put", "_size")

    def __init__(self, put: Callable[[str, Body, str], Awaitable[ObjectInfo]], key: str) -> None:
        self._put = put
        self._key = key
        self._pieces: list[bytes] = []
        self._size = 0
        self._info: ObjectInfo | None = None

    @property
    def pending_bytes(self) -> int:
        return self._size

    def write(self, pieces: list[bytes]) -> None:
        self._pieces.extend(pieces)
        self._size += sum(map(len, pieces))

    async def close(self) -> ObjectInfo:
        if self._info is None:
            self._info = await self._put(self._key, self._pieces, content_type_for(self._key))
            self.abort()
        return self._info

    def abort(self) -> None:
        self._pieces = []
        self._size = 0


def content_type_for(key: str) -> str:
    """OSS serves playlists and segments with these types (spec: Objects needed for playback)."""
    if key.endswith(".m3u8"):
        return "application/x-mpegURL"
    if key.endswith(".ts"):
        return "video/MP2T"
    if key.endswith((".m4s", ".mp4")):  # fMP4 segments and init sections (RFC 8216bis 3.1.2)
        return "video/mp4"
    return "application/octet-stream"
