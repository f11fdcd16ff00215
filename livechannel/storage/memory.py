"""An in-memory ObjectStorage with the same semantics as the local one, for unit tests."""

from __future__ import annotations

import bisect
import hashlib
import time
from collections.abc import AsyncIterator, Callable

from livechannel.errors import NoSuchKey
from livechannel.storage.base import (
    Body,
    HeldWriter,
    ListResult,
    ObjectInfo,
    content_type_for,
    joined,
)
from livechannel.storage.keys import key_segments
from livechannel.storage.listing import collect

CHUNK_BYTES = 256 * 1024  # same bound as the local store, so tests see the same chunking


def _wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


class MemoryStorage:
    def __init__(self, clock_ms: Callable[[], int] = _wall_clock_ms) -> None:
        self._clock_ms = clock_ms
        self._objects: dict[str, tuple[ObjectInfo, bytes]] = {}
        self._sorted_keys: list[str] = []  # kept sorted, so list() is a bisect, not a sort

    async def put(self, key: str, data: Body, content_type: str) -> ObjectInfo:
        # Content type follows the key, as in the local store (which keeps no per-object type).
        key_segments(key)
        data = bytes(joined(data))
        info = ObjectInfo(
            key=key,
            size=len(data),
            etag=hashlib.md5(data, usedforsecurity=False).hexdigest().upper(),
            last_modified_ms=self._clock_ms(),
            content_type=content_type_for(key),
        )
        if key not in self._objects:
            bisect.insort(self._sorted_keys, key)
        self._objects[key] = (info, data)
        return info

    def open_writer(self, key: str) -> HeldWriter:
        key_segments(key)
        return HeldWriter(self.put, key)

    async def head(self, key: str) -> ObjectInfo | None:
        key_segments(key)
        found = self._objects.get(key)
        return found[0] if found is not None else None

    async def get(
        self, key: str, start: int = 0, end: int | None = None
    ) -> tuple[ObjectInfo, AsyncIterator[bytes]]:
        key_segments(key)
        found = self._objects.get(key)
        if found is None:
            raise NoSuchKey("the object does not exist", Key=key)
        info, data = found
        stop = info.size if end is None else min(end, info.size)
        return info, _chunks(data, max(start, 0), stop)

    async def delete(self, key: str) -> bool:
        key_segments(key)
        if self._objects.pop(key, None) is None:
            return False
        self._sorted_keys.pop(bisect.bisect_left(self._sorted_keys, key))
        return True

    async def list(
        self, prefix: str, marker: str, max_keys: int, delimiter: str = ""
    ) -> ListResult:
        first = bisect.bisect_right(self._sorted_keys, max(prefix, marker))
        if prefix > marker and prefix in self._objects:
            first -= 1  # the prefix itself is a key and not excluded by the marker
        keys = (self._sorted_keys[i] for i in range(first, len(self._sorted_keys)))

        def info(key: str) -> ObjectInfo | None:
            found = self._objects.get(key)
            return found[0] if found is not None else None

        return collect(keys, info, prefix, marker, max_keys, delimiter)

    async def close(self) -> None:
        self._objects.clear()
        self._sorted_keys.clear()


async def _chunks(data: bytes, start: int, stop: int) -> AsyncIterator[bytes]:
    view = memoryview(data)
    for offset in range(start, stop, CHUNK_BYTES):
        yield bytes(view[offset : min(offset + CHUNK_BYTES, stop)])
