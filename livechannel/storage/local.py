"""ObjectStorage on a local directory: one bucket per root, key "a/b.ts" -> file <root>/a/b.ts.

Choices, measured on this project's ext4 dev VM (a 2 MB segment, a 400 B playlist):
- `put` writes a temp file in the target's directory, fsyncs it, `os.replace`s it over the
  key, then fsyncs the directory. The fsyncs cost ~0.1-0.2 ms per put here (more on spinning
  disks) against ~2 ms for writing + hashing a segment; the design needs a segment to be
  durable before the playlist that names it is replaced, so they stay on by default.
- All file I/O runs in a worker thread (`asyncio.to_thread`, ~70 us per hop): a cached 256 KiB
  read takes ~20 us, but a cold read or an fsync can take milliseconds and must not stall the
  RTMP connections sharing the event loop.
- ETag: the MD5 of the content, upper-case hex like OSS (seed 7.1), computed during `put` and
  kept in an extended attribute set on the temp file before the rename, so content and ETag
  change together atomically. Where xattrs are unsupported (or a file was placed by hand) the
  ETag falls back to "<size hex>-<mtime ns hex>", still stable and changing with the content.
- Content type follows the key (`content_type_for`); nothing per object is stored for it.
- A file and a directory cannot share a name, so unlike OSS the keys "a" and "a/b" cannot
  both exist here; such a put is refused with InvalidObjectName.
- Symlinks are never created here; one placed by hand is not an object (not listed, not
  served: O_NOFOLLOW). A symlinked *directory* is still followed by get/put, so an operator
  may mount a channel's directory elsewhere; listing does not descend into it.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import os
import secrets
import stat
import threading
from collections.abc import Iterator

from livechannel.errors import InvalidObjectName, NoSuchKey, StorageError
from livechannel.storage.base import ListResult, ObjectInfo, content_type_for
from livechannel.storage.keys import key_segments
from livechannel.storage.listing import ListState, collect

CHUNK_BYTES = 256 * 1024  # bounds memory per reader while keeping thread hops per MB low
TEMP_PREFIX = ".livechannel-tmp-"  # temp files of in-flight puts; refused as keys, never listed
ETAG_XATTR = "user.livechannel.md5"  # where the content MD5 lives next to the file
MAX_SEGMENT_BYTES = 255  # NAME_MAX of Linux filesystems: a longer key segment cannot be a file
MKDIR_RACE_RETRIES = 5  # a concurrent delete may remove the (empty) directory we just made
FILE_MODE = 0o644  # objects are served by this process; let operators read them too
PERMANENT_ERRNOS = frozenset({errno.EACCES, errno.EPERM, errno.EROFS})  # need an operator
NAME_CONFLICT_ERRNOS = frozenset({errno.ENOTDIR, errno.EISDIR, errno.EEXIST, errno.ENAMETOOLONG})
NO_XATTR_ERRNOS = frozenset({errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENODATA})


def _storage_error(e: OSError, action: str, key: str) -> StorageError:
    name = errno.errorcode.get(e.errno or 0, "unknown error")
    reason = os.strerror(e.errno) if e.errno else str(e)
    return StorageError(
        f"local storage cannot {action} {key!r}: {reason} ({name})",
        permanent=e.errno in PERMANENT_ERRNOS,
    )


def _fallback_etag(st: os.stat_result) -> str:
    return f"{st.st_size:x}-{st.st_mtime_ns:x}"


def _read_etag(target: int | str, st: os.stat_result) -> str:
    try:
        if isinstance(target, int):
            return os.getxattr(target, ETAG_XATTR).decode("ascii")
        return os.getxattr(target, ETAG_XATTR, follow_symlinks=False).decode("ascii")
    except (OSError, UnicodeDecodeError):
        return _fallback_etag(st)


class LocalStorage:
    def __init__(self, root: str, *, fsync: bool = True) -> None:
        self.root = os.path.realpath(root)
        self.fsync = fsync
        try:
            os.makedirs(self.root, exist_ok=True)
        except OSError as e:
            raise _storage_error(e, "create the root for", "") from e

    # --- keys -> paths --------------------------------------------------------------------
    def _path(self, key: str) -> str:
        segments = key_segments(key)
        for segment in segments:
            if len(segment.encode("utf-8")) > MAX_SEGMENT_BYTES:
                raise InvalidObjectName(
                    f"a path segment is longer than {MAX_SEGMENT_BYTES} bytes", Key=key
                )
            if segment.startswith(TEMP_PREFIX):
                raise InvalidObjectName(f"{TEMP_PREFIX!r} names are reserved", Key=key)
        return os.path.join(self.root, *segments)

    def _info(self, key: str, st: os.stat_result, etag: str) -> ObjectInfo:
        return ObjectInfo(
            key=key,
            size=st.st_size,
            etag=etag,
            last_modified_ms=st.st_mtime_ns // 1_000_000,
            content_type=content_type_for(key),
        )

    # --- put ------------------------------------------------------------------------------
    async def put(self, key: str, data: bytes, content_type: str) -> ObjectInfo:
        path = self._path(key)
        try:
            return await asyncio.to_thread(self._put_sync, key, path, data)
        except OSError as e:
            if e.errno in NAME_CONFLICT_ERRNOS:
                raise InvalidObjectName(
                    "the name conflicts with an existing object or directory", Key=key
                ) from e
            raise _storage_error(e, "write", key) from e

    def _put_sync(self, key: str, path: str, data: bytes) -> ObjectInfo:
        parent = os.path.dirname(path)
        etag = hashlib.md5(data, usedforsecurity=False).hexdigest().upper()
        fd, temp = self._create_temp(parent)
        try:
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                os.fchmod(fd, FILE_MODE)
                try:
                    os.setxattr(fd, ETAG_XATTR, etag.encode("ascii"))
                except OSError as e:
                    if e.errno not in NO_XATTR_ERRNOS:
                        raise
                    etag = ""
                if self.fsync:
                    os.fsync(fd)
                st = os.fstat(fd)
            finally:
                os.close(fd)
            os.replace(temp, path)
        except BaseException:
            # already renamed, or the disk is gone: nothing better to do
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise
        if self.fsync:
            self._fsync_dir(parent)
        return self._info(key, st, etag or _fallback_etag(st))

    def _create_temp(self, parent: str) -> tuple[int, str]:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
        for _ in range(MKDIR_RACE_RETRIES):
            temp = os.path.join(parent, TEMP_PREFIX + secrets.token_hex(8))
            try:
                return os.open(temp, flags, 0o600), temp  # a file in the way: ENOTDIR
            except FileNotFoundError:
                pass
            # makedirs raises FileExistsError if a delete prunes the directory between its
            # mkdir (EEXIST) and its isdir check; either race just means "try again".
            with contextlib.suppress(FileNotFoundError, FileExistsError):
                os.makedirs(parent, exist_ok=True)
        raise OSError(errno.EAGAIN, "the directory kept disappearing", parent)

    def _fsync_dir(self, path: str) -> None:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    # --- head / get -----------------------------------------------------------------------
    async def head(self, key: str) -> ObjectInfo | None:
        path = self._path(key)
        try:
            return await asyncio.to_thread(self._head_sync, key, path)
        except OSError as e:
            raise _storage_error(e, "stat", key) from e

    def _head_sync(self, key: str, path: str) -> ObjectInfo | None:
        try:
            st = os.lstat(path)
        except (FileNotFoundError, NotADirectoryError):
            return None
        if not stat.S_ISREG(st.st_mode):
            return None
        return self._info(key, st, _read_etag(path, st))

    async def get(
        self, key: str, start: int = 0, end: int | None = None
    ) -> tuple[ObjectInfo, FileChunks]:
        path = self._path(key)
        try:
            found = await asyncio.to_thread(self._open_sync, key, path)
        except OSError as e:
            raise _storage_error(e, "read", key) from e
        if found is None:
            raise NoSuchKey("the object does not exist", Key=key)
        info, fd = found
        stop = info.size if end is None else min(end, info.size)
        return info, FileChunks(fd, max(start, 0), stop, key)

    def _open_sync(self, key: str, path: str) -> tuple[ObjectInfo, int] | None:
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            fd = os.open(path, flags)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return None
        except OSError as e:
            if e.errno == errno.ELOOP:  # a symlink: not an object we wrote
                return None
            raise
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                os.close(fd)
                return None
            return self._info(key, st, _read_etag(fd, st)), fd
        except BaseException:
            os.close(fd)
            raise

    # --- delete ---------------------------------------------------------------------------
    async def delete(self, key: str) -> bool:
        path = self._path(key)
        try:
            return await asyncio.to_thread(self._delete_sync, path)
        except OSError as e:
            raise _storage_error(e, "delete", key) from e

    def _delete_sync(self, path: str) -> bool:
        try:
            if not stat.S_ISREG(os.lstat(path).st_mode):
                return False
            os.unlink(path)
        except (FileNotFoundError, NotADirectoryError):
            return False
        directory = os.path.dirname(path)
        while directory != self.root and directory.startswith(self.root + os.sep):
            try:
                os.rmdir(directory)
            except OSError:
                break  # not empty (other objects, an in-flight put's temp file) or gone
            directory = os.path.dirname(directory)
        return True

    # --- list -----------------------------------------------------------------------------
    async def list(
        self, prefix: str, marker: str, max_keys: int, delimiter: str = ""
    ) -> ListResult:
        try:
            return await asyncio.to_thread(self._list_sync, prefix, marker, max_keys, delimiter)
        except OSError as e:
            raise _storage_error(e, "list", prefix) from e

    def _list_sync(self, prefix: str, marker: str, max_keys: int, delimiter: str) -> ListResult:
        state = ListState()
        start_dir = prefix[: prefix.rfind("/") + 1]
        try:
            if start_dir:
                self._path(start_dir[:-1])  # only descend straight to a safe directory name
        except InvalidObjectName:
            start_dir = ""
        keys = self._walk(start_dir, prefix, marker, state)
        return collect(keys, self._listed_info, prefix, marker, max_keys, delimiter, state)

    def _listed_info(self, key: str) -> ObjectInfo | None:
        path = os.path.join(self.root, *key.split("/"))
        try:
            st = os.lstat(path)
        except (FileNotFoundError, NotADirectoryError):
            return None  # deleted while we were listing
        return self._info(key, st, _read_etag(path, st))

    def _walk(self, rel_dir: str, prefix: str, marker: str, state: ListState) -> Iterator[str]:
        """Keys under `rel_dir` ("" or "a/b/") in key order, pruning what cannot match."""
        try:
            with os.scandir(os.path.join(self.root, rel_dir)) as it:
                entries = list(it)
        except (FileNotFoundError, NotADirectoryError):
            return
        names: list[tuple[str, bool]] = []
        for entry in entries:
            name = entry.name
            if name.startswith(TEMP_PREFIX) or "\\" in name:
                continue
            try:
                name.encode("utf-8")  # a non-UTF-8 file name placed by hand is not a key
            except UnicodeEncodeError:
                continue
            if entry.is_dir(follow_symlinks=False):
                names.append((name + "/", True))  # "/" sorts it where its keys sort
            elif entry.is_file(follow_symlinks=False):
                names.append((name, False))
        names.sort()
        for name, is_dir in names:
            if state.skipped(rel_dir):
                return  # everything here collapsed into one common prefix already
            full = rel_dir + name
            if not is_dir:
                if full.startswith(prefix) and full > marker:
                    yield full
                continue
            if not (full.startswith(prefix) or prefix.startswith(full)):
                continue
            if full <= marker and not marker.startswith(full):
                continue  # every key under it sorts before the marker
            if state.skipped(full):
                continue
            yield from self._walk(full, prefix, marker, state)

    async def close(self) -> None:
        return None


class FileChunks:
    """Async iterator over [start, stop) of an open file, CHUNK_BYTES at a time.

    Holds the file descriptor opened by `get`, so the bytes are those of the object as it was
    then, even if a `put` replaces it meanwhile. Closed at the end, by `aclose`, or when
    garbage-collected (a client that went away mid-download).
    """

    def __init__(self, fd: int, start: int, stop: int, key: str) -> None:
        self._fd = fd
        self._pos = start
        self._stop = stop
        self._key = key
        self._lock = threading.Lock()  # a read in a worker thread vs a close on the loop

    def __aiter__(self) -> FileChunks:
        return self

    async def __anext__(self) -> bytes:
        if self._pos >= self._stop:
            self._close()
            raise StopAsyncIteration
        try:
            data = await asyncio.to_thread(self._read, min(CHUNK_BYTES, self._stop - self._pos))
        except OSError as e:
            self._close()
            raise _storage_error(e, "read", self._key) from e
        if not data:
            self._close()
            raise StopAsyncIteration
        self._pos += len(data)
        return data

    def _read(self, size: int) -> bytes:
        with self._lock:
            if self._fd < 0:
                return b""
            return os.pread(self._fd, size, self._pos)

    def _close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1

    async def aclose(self) -> None:
        self._close()

    def __del__(self) -> None:
        self._close()
