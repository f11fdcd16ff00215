"""ObjectStorage on an S3-compatible service (AWS S3, MinIO, OSS, Ceph RGW, R2), via obstore.

Why obstore (docs/storage.md has the measurements): its requests run in Rust on its own
threads, so the event loop that also reads RTMP sockets spends ~0.1 ms per small PUT instead
of ~0.8 ms with aiobotocore, stalls less, holds pooled keep-alive connections, retries 5xx,
timeouts and resets with jittered backoff, and needs no Python dependencies.

Semantics, matched to the local store where S3 allows:
- `put` is one PUT request (never multipart): S3 makes it visible whole or not at all.
- A segment is held in memory until it is cut, then put (`open_writer` is a HeldWriter), not
  streamed as a multipart upload as the local store streams it to disk: S3's parts are at
  least 5 MiB but the last (AWS S3 user guide, multipart upload limits), more than a whole
  segment of a typical live stream (1.7 MB at 2.66 Mbit/s and FragDuration 5), which could
  only be one PUT anyway;
  for the larger ones, a part that fails past the client's retries loses the upload, and
  with the bytes already sent gone from memory the segment could not be retried (the
  pipeline retries a put until the store is back, holding the publisher meanwhile), and
  obstore can neither resume nor abort an upload (one left behind costs storage until a
  lifecycle rule removes it). What a push holds is bounded by `limits.max_segment_bytes`
  (64 MiB) for the open segment, and the upload queue by `limits.upload_queue_segments`
  per push and `limits.max_upload_queue_bytes` per worker (docs/storage.md).
- ETag: S3's, unquoted and upper-cased: the content MD5 for a single PUT, as OSS reports it.
- Times are whole seconds: HEAD carries an HTTP date, so listings are truncated to match.
- Content type follows the key (`content_type_for`); it is also stored, for direct readers.
- `delete` answers whether something was deleted, which S3's DELETE does not say: a HEAD first.
- Listing: obstore lists by path segment, without a marker+delimiter combination, so OSS
  paging is rebuilt on S3's "start after" listing; when keys collapse into a common prefix
  the listing restarts after that prefix instead of walking every key under it. "After the
  prefix" is prefix + U+10FFFF (the highest code point, a noncharacter): a key continuing the
  prefix with that very character would be skipped.
"""

from __future__ import annotations

import asyncio
import builtins
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import obstore
from obstore.exceptions import PermissionDeniedError, UnauthenticatedError
from obstore.store import S3Store

from livechannel.errors import InvalidArgument, InvalidObjectName, NoSuchKey, StorageError
from livechannel.storage.base import (
    Body,
    HeldWriter,
    ListResult,
    ObjectInfo,
    content_type_for,
    joined,
)
from livechannel.storage.keys import key_segments
from livechannel.storage.s3_config import S3Settings

CHUNK_BYTES = 256 * 1024  # same bound per chunk as the local store: memory per reader
MIN_CHUNK_BYTES = 64 * 1024  # fewer loop wake-ups than obstore's network-sized pieces
LIST_CHUNK_KEYS = 1000  # S3's own page size: one request per 1000 keys
AFTER_ALL = "\U0010ffff"  # sorts after any other character in UTF-8 byte order
# Interpreter exit while obstore completes a call races with the Python runtime going away
# (pyo3-async-runtimes hands the result back from a Rust thread); a short pause in `close`
# lets such hand-backs finish first.
CLOSE_DRAIN_S = 0.05
_PERMANENT = (PermissionDeniedError, UnauthenticatedError)  # need an operator, not a retry


def _storage_error(e: BaseException, action: str, key: str) -> StorageError:
    first_line = str(e).split("\n", 1)[0]  # obstore appends a multi-line debug dump
    return StorageError(
        f"S3 cannot {action} {key!r}: {type(e).__name__}: {first_line}",
        permanent=isinstance(e, _PERMANENT),
    )


def _refused_name(key: str) -> InvalidObjectName:
    # obstore parses keys as paths and refuses some our key rules let through (control
    # characters): such a name cannot exist in this store.
    return InvalidObjectName("the S3 client cannot use this object name", Key=key)


def _path_part(segment: str) -> bool:
    """Whether obstore accepts `segment` as one path segment (for a listing offset)."""
    return segment not in ("", ".", "..") and not any(
        ord(c) < 0x20 or ord(c) == 0x7F for c in segment
    )


def _offset(after: str) -> str | None:
    """The longest leading run of whole path segments of `after` that obstore accepts. It sorts
    at or before `after`, so listing from it misses nothing; the caller filters the rest."""
    parts = after.split("/")
    good = 0
    while good < len(parts) and _path_part(parts[good]):
        good += 1
    return "/".join(parts[:good]) or None


def _etag(raw: str | None) -> str:
    return (raw or "").strip('"').upper()


def _ms(when: datetime) -> int:
    return int(when.timestamp()) * 1000  # whole seconds: what HEAD can report


def _info(meta: Any) -> ObjectInfo:
    key = meta["path"]
    return ObjectInfo(
        key=key,
        size=int(meta["size"]),
        etag=_etag(meta.get("e_tag")),
        last_modified_ms=_ms(meta["last_modified"]),
        content_type=content_type_for(key),
    )


class S3Storage:
    def __init__(self, settings: S3Settings) -> None:
        self.settings = settings
        config: dict[str, Any] = {
            "region": settings.region,
            "virtual_hosted_style_request": settings.virtual_hosted,
        }
        if settings.endpoint:
            config["endpoint"] = settings.endpoint
        if settings.access_key_id:
            config["access_key_id"] = settings.access_key_id
            config["secret_access_key"] = settings.secret_access_key
            if settings.session_token:
                config["session_token"] = settings.session_token
        try:
            self._store = S3Store(
                settings.bucket,
                prefix=settings.prefix or None,
                config=config,  # type: ignore[arg-type]
                client_options={
                    "allow_http": settings.allow_http,
                    "connect_timeout": timedelta(seconds=settings.connect_timeout_s),
                    "read_timeout": timedelta(seconds=settings.read_timeout_s),
                    "timeout": timedelta(seconds=settings.request_timeout_s),
                },
                retry_config={
                    "max_retries": settings.max_retries,
                    "retry_timeout": timedelta(seconds=settings.retry_timeout_s),
                },
            )
        except Exception as e:  # obstore validates the configuration eagerly
            raise StorageError(f"S3 bucket {settings.bucket!r}: {e}", permanent=True) from e

    # --- objects --------------------------------------------------------------------------
    async def put(self, key: str, data: Body, content_type: str) -> ObjectInfo:
        key_segments(key)
        ctype = content_type_for(key)
        body = joined(data)
        try:
            result = await obstore.put_async(
                self._store,
                key,
                body,
                attributes={"Content-Type": ctype},
                use_multipart=False,
            )
        except ValueError:
            raise _refused_name(key) from None
        except Exception as e:
            raise _storage_error(e, "write", key) from e
        return ObjectInfo(
            key=key,
            size=len(body),
            etag=_etag(result.get("e_tag")),
            # S3 answers a PUT without the object's time; ours is within a second of it.
            last_modified_ms=_ms(datetime.now().astimezone()),
            content_type=ctype,
        )

    def open_writer(self, key: str) -> HeldWriter:
        """Held until `close`, then one PUT (the module's docstring says why)."""
        key_segments(key)
        return HeldWriter(self.put, key)

    async def head(self, key: str) -> ObjectInfo | None:
        key_segments(key)
        try:
            return _info(await obstore.head_async(self._store, key))
        except FileNotFoundError:
            return None
        except ValueError:
            raise _refused_name(key) from None
        except Exception as e:
            raise _storage_error(e, "stat", key) from e

    async def get(
        self, key: str, start: int = 0, end: int | None = None
    ) -> tuple[ObjectInfo, AsyncIterator[bytes]]:
        key_segments(key)
        start = max(start, 0)
        if start == 0 and end is None:
            options: dict[str, Any] = {}
        elif end is None:
            options = {"range": {"offset": start}}
        else:
            options = {"range": (start, max(end, start + 1))}  # S3 has no empty range
        try:
            result = await obstore.get_async(self._store, key, options=options)  # type: ignore[arg-type]
        except FileNotFoundError:
            raise NoSuchKey("the object does not exist", Key=key) from None
        except ValueError:
            raise _refused_name(key) from None
        except Exception as e:
            if not options:
                raise _storage_error(e, "read", key) from e
            # S3 refuses a range that starts at or past the end (416); ours is then empty.
            info = await self.head(key)
            if info is None:
                raise NoSuchKey("the object does not exist", Key=key) from None
            if start < info.size and (end is None or end > start):
                raise _storage_error(e, "read", key) from e
            return info, S3Chunks(None, 0, key)
        info = _info(result.meta)
        first, stop = result.range
        if end is not None and end <= start:
            stop = first  # the one byte fetched for an empty range is not wanted
        return info, S3Chunks(result.stream(MIN_CHUNK_BYTES), stop - first, key)

    async def delete(self, key: str) -> bool:
        if await self.head(key) is None:
            return False
        try:
            await obstore.delete_async(self._store, key)
        except Exception as e:
            raise _storage_error(e, "delete", key) from e
        return True

    # --- list -----------------------------------------------------------------------------
    async def list(
        self, prefix: str, marker: str, max_keys: int, delimiter: str = ""
    ) -> ListResult:
        if max_keys < 1:
            raise InvalidArgument("max-keys must be at least 1", ArgumentName="max-keys")
        # obstore's prefix matches whole path segments: list from the prefix's directory.
        directory = prefix[: prefix.rfind("/")] if "/" in prefix else ""
        if directory and not all(_path_part(part) for part in directory.split("/")):
            return ListResult([], [], False, "")  # no key we can hold starts like that
        objects: list[ObjectInfo] = []
        prefixes: list[str] = []
        # Keys below `prefix[:-1]` cannot start with `prefix`; start just there, or after the
        # marker if that is later.
        after = max(marker, prefix[:-1])
        while True:
            restart = await self._list_from(
                directory, after, prefix, marker, max_keys, delimiter, objects, prefixes
            )
            if restart is None:
                break
            after = restart
        truncated = len(objects) + len(prefixes) > max_keys
        if truncated:
            del (prefixes if _last_is_prefix(objects, prefixes) else objects)[-1]
        last = max([o.key for o in objects[-1:]] + prefixes[-1:], default="")
        return ListResult(objects, prefixes, truncated, last if truncated else "")

    async def _list_from(
        self,
        directory: str,
        after: str,
        prefix: str,
        marker: str,
        max_keys: int,
        delimiter: str,
        objects: builtins.list[ObjectInfo],  # `list` here is our method
        prefixes: builtins.list[str],
    ) -> str | None:
        """Collect up to max_keys + 1 entries (one more tells "truncated"). Returns where to
        restart the listing (after a common prefix), or None when done."""
        skipping = ""  # a common prefix whose keys are passed over in this same stream
        try:
            stream = obstore.list(
                self._store, directory or None, offset=_offset(after), chunk_size=LIST_CHUNK_KEYS
            )
            async for chunk in stream:
                for meta in chunk:
                    key = meta["path"]
                    if not key.startswith(prefix):
                        if key > prefix:
                            return None  # past every key with the prefix
                        continue
                    if key <= marker or (skipping and key.startswith(skipping)):
                        continue
                    cut = key.find(delimiter, len(prefix)) if delimiter else -1
                    if cut < 0:
                        objects.append(_info(meta))
                    else:
                        common = key[: cut + len(delimiter)]
                        if common > marker:
                            prefixes.append(common)
                        if len(objects) + len(prefixes) <= max_keys:
                            restart = common + AFTER_ALL
                            if _offset(restart) == restart:
                                return restart  # a new listing, past everything under it
                            skipping = common  # obstore cannot start there: walk past
                    if len(objects) + len(prefixes) > max_keys:
                        return None
        except Exception as e:
            raise _storage_error(e, "list", prefix) from e
        return None

    async def close(self) -> None:
        await asyncio.sleep(CLOSE_DRAIN_S)


def _last_is_prefix(objects: list[ObjectInfo], prefixes: list[str]) -> bool:
    if not prefixes:
        return False
    return not objects or prefixes[-1] > objects[-1].key


class S3Chunks:
    """The body of one GET, re-cut into pieces of at most CHUNK_BYTES. Closing it (or
    dropping it) drops obstore's stream, which closes the HTTP response."""

    def __init__(self, stream: Any, remaining: int, key: str) -> None:
        self._stream = stream
        self._remaining = remaining
        self._key = key
        self._pending = memoryview(b"")

    def __aiter__(self) -> S3Chunks:
        return self

    async def __anext__(self) -> bytes:
        while not self._pending:
            if self._stream is None or self._remaining <= 0:
                self._stream = None
                raise StopAsyncIteration
            try:
                chunk = await self._stream.__anext__()
            except StopAsyncIteration:
                self._stream = None
                raise
            except Exception as e:
                self._stream = None
                raise _storage_error(e, "read", self._key) from e
            self._pending = memoryview(chunk)[: self._remaining]
            self._remaining -= len(self._pending)
        piece, self._pending = self._pending[:CHUNK_BYTES], self._pending[CHUNK_BYTES:]
        return bytes(piece)

    async def aclose(self) -> None:
        self._stream = None
        self._pending = memoryview(b"")
