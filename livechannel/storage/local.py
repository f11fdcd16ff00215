"""ObjectStorage on a local directory: one bucket per root, key "a/b.ts" -> file <root>/a/b.ts.

Choices, measured on this project's ext4 dev VM (a 2 MB segment, a 400 B playlist):
- `put` writes a temp file in the target's directory and `os.replace`s it over the key, so a
  reader sees the old object or the new one, never half of one. What was written survives a
  process crash (even kill -9): segments and snapshots are on the device when their put
  returns (O_DIRECT, direct_io.py), playlists in the kernel's page cache. fsync (of the file
  and its directory) is off by default, as in nginx-rtmp: with it on, every put waits for a
  device cache flush, and on ext4 an fsync also flushes other files' dirty data, so at 300
  publishers puts queued behind each other (bench, docs/performance.md; measured with
  buffered writes). Without it a power cut may lose the last
  seconds of segments; ext4's default data=ordered + auto_da_alloc still write a renamed
  file's data before the rename that names it, and the journal keeps renames in order, so a
  playlist never outlives the segments it lists. `fsync = true` in the bucket's storage table
  makes every put durable before it returns.
- All file I/O runs in a worker thread (`asyncio.to_thread`, ~70 us per hop): a cached 256 KiB
  read takes ~20 us, but on ext4 any write, create or rename can wait for a journal commit
  (50-250 ms seen at 500 publishers) and must not stall the RTMP connections sharing the event
  loop. We measured the other way too (puts on the loop, as nginx does): one worker then stays
  on one core, but at 525 publishers on two workers such stalls pushed the playlist p99 from
  0.4 s to 0.9 s (docs/performance.md).
- ETag: "<inode>-<size>-<mtime ns>" in upper-case hex, from the file's stat, like the ETags of
  nginx and Apache for static files. Every put renames a new file (a new inode) over the key,
  so the ETag changes with every put and stays stable between them. It is not the content's
  MD5: OSS promises an MD5 ETag only for PutObject (OSS API reference, PutObject), which this
  service does not take, and hashing every segment cost ~10 % of the CPU at 300 publishers.
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
import os
import secrets
import stat
import threading
from collections.abc import Iterator

from livechannel.errors import InvalidObjectName, NoSuchKey, StorageError
from livechannel.storage import direct_io
from livechannel.storage.base import Body, ListResult, ObjectInfo, content_type_for
from livechannel.storage.keys import TEMP_PREFIX, check_file_name, key_segments
from livechannel.storage.listing import ListState, collect
from livechannel.storage.local_writer import LocalSegmentWriter, remove_leftovers

# Reads go out in pieces this big. Not larger: blocks of 128 KiB and more make glibc's malloc
# raise its mmap threshold and then keep them in its heap after a burst (16 viewers that
# stopped reading left the process ~35 MiB above its baseline at 256 KiB, ~20 at 64 KiB: the
# soak, docs/robustness.md); at the cost of a thread hop per 64 KiB read.
CHUNK_BYTES = 64 * 1024
MKDIR_RACE_RETRIES = 5  # a concurrent delete may remove the (empty) directory we just made
PLAYLIST_SUFFIX = ".m3u8"  # rewritten with every segment, read by every player: cached
# Objects of a private bucket are readable by the service's user only (other local users
# could otherwise read what the API guards with signatures); a public bucket's are 0644, so
# operators and a local web server can read them too. `file_mode` per bucket overrides.
PRIVATE_FILE_MODE = 0o600
PUBLIC_FILE_MODE = 0o644
PERMANENT_ERRNOS = frozenset({errno.EACCES, errno.EPERM, errno.EROFS})  # need an operator
IOV_MAX = os.sysconf("SC_IOV_MAX")  # pieces one writev may take (1024 on Linux)
NAME_CONFLICT_ERRNOS = frozenset({errno.ENOTDIR, errno.EISDIR, errno.EEXIST, errno.ENAMETOOLONG})


def _storage_error(e: OSError, action: str, key: str) -> StorageError:
    name = errno.errorcode.get(e.errno or 0, "unknown error")
    reason = os.strerror(e.errno) if e.errno else str(e)
    return StorageError(
        f"local storage cannot {action} {key!r}: {reason} ({name})",
        permanent=e.errno in PERMANENT_ERRNOS,
    )


def _write_all(fd: int, pieces: list[bytes]) -> None:
    """writev the pieces, IOV_MAX at a time, resuming after a short write."""
    views = [memoryview(p) for p in pieces if p]
    while views:
        written = os.writev(fd, views[:IOV_MAX])
        done = 0
        while done < len(views) and written >= len(views[done]):
            written -= len(views[done])
            done += 1
        del views[:done]
        if written:
            views[0] = views[0][written:]


def _etag(st: os.stat_result) -> str:
    return f"{st.st_ino:X}-{st.st_size:X}-{st.st_mtime_ns:X}"


class LocalStorage:
    def __init__(
        self,
        root: str,
        *,
        fsync: bool = False,
        direct_io: bool = True,
        file_mode: int = PRIVATE_FILE_MODE,
    ) -> None:
        """`direct_io`: media objects (not playlists, which are rewritten and read all the
        time) are written past the page cache where the filesystem allows (direct_io.py).
        `file_mode`: the permission bits every object gets."""
        self.root = os.path.realpath(root)
        self.file_mode = file_mode
        self.fsync = fsync
        self.direct_io = direct_io
        try:
            os.makedirs(self.root, exist_ok=True)
        except OSError as e:
            raise _storage_error(e, "create the root for", "") from e

    # --- keys -> paths --------------------------------------------------------------------
    def _path(self, key: str) -> str:
        segments = key_segments(key)
        for segment in segments:
            check_file_name(segment, key)
        return os.path.join(self.root, *segments)

    def _info(self, key: str, st: os.stat_result) -> ObjectInfo:
        return ObjectInfo(
            key=key,
            size=st.st_size,
            etag=_etag(st),
            last_modified_ms=st.st_mtime_ns // 1_000_000,
            content_type=content_type_for(key),
        )

    # --- put ------------------------------------------------------------------------------
    async def put(self, key: str, data: Body, content_type: str) -> ObjectInfo:
        path = self._path(key)
        try:
            return await asyncio.to_thread(self._put_sync, key, path, data)
        except OSError as e:
            raise self.write_error(e, key) from e

    def open_writer(self, key: str) -> LocalSegmentWriter:
        """The segment is appended to a temp file as it grows and renamed over `key` by
        `close` (local_writer.py)."""
        path = self._path(key)
        direct = self.direct_io and not key.endswith(PLAYLIST_SUFFIX)
        return LocalSegmentWriter(self, key, path, direct=direct)

    def remove_leftovers(self) -> int:
        """Remove the temp files a crash left in the bucket (blocking: run it in a thread
        at start); how many were removed."""
        return remove_leftovers(self.root)

    def write_error(self, e: OSError, key: str) -> Exception:
        if e.errno in NAME_CONFLICT_ERRNOS:
            return InvalidObjectName(
                "the name conflicts with an existing object or directory", Key=key
            )
        return _storage_error(e, "write", key)

    def _put_sync(self, key: str, path: str, data: Body) -> ObjectInfo:
        parent = os.path.dirname(path)
        fd, temp = self.create_temp(parent)
        try:
            try:
                pieces = data if isinstance(data, list) else [data]
                direct = self.direct_io and not key.endswith(PLAYLIST_SUFFIX)
                if not (direct and direct_io.write(fd, pieces)):
                    _write_all(fd, pieces)
                return self.commit(key, fd, temp, path)
            finally:
                os.close(fd)
        except BaseException:
            # already renamed, or the disk is gone: nothing better to do
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise

    def commit(self, key: str, fd: int, temp: str, path: str) -> ObjectInfo:
        """Make the written temp file `fd` the object `key`: its mode, fsync if asked, the
        rename (atomic for readers), the directory's fsync if asked."""
        os.fchmod(fd, self.file_mode)
        if self.fsync:
            os.fsync(fd)
        st = os.fstat(fd)
        os.replace(temp, path)
        if self.fsync:
            self._fsync_dir(os.path.dirname(path))
        return self._info(key, st)

    def create_temp(self, parent: str) -> tuple[int, str]:
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
        return self._info(key, st)

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
            return self._info(key, st), fd
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
        return self._info(key, st)

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
