"""A segment written to local disk as it grows (LocalStorage.open_writer).

Holding a whole segment in memory until it is cut cost ~1.4 MiB per publisher at 2.66 Mbit/s
and FragDuration 5 (docs/performance.md); nginx-rtmp writes its fragment as it goes. Here the
pipeline hands the open segment over every few hundred KiB (hls/pipeline.py,
STREAM_FLUSH_BYTES) and this writer appends it to a temp file next to the key, from a small
pool of threads of its own: a write, create or rename may wait for the disk or an ext4
journal commit, which must never stall the event loop. `close` writes the rest, then renames
the temp file over the key, so a reader sees the segment whole or not at all, and the
pipeline writes the playlist naming it only after that (the put-ordering guarantee: a segment
is stored before any playlist names it).

- Direct writes (direct_io.py): whole 4096-byte blocks with O_DIRECT from each thread's
  aligned buffer; the partial block at the end waits in memory (< 4 KiB) for the next hand
  over, and `close` pads it and truncates the file to its size. A filesystem that refuses
  O_DIRECT gets buffered writes for that file, with no error.
- The event loop only appends to a list under a lock and, when no write of this file is
  queued yet, adds the writer to the process's next batch. The batch goes to the threads as
  one job per thread when it holds BATCH_MAX_BYTES (~60 ms of 200 publishers) or has waited
  BATCH_MAX_DELAY_S (a few publishers): so the threads are woken a few times a second
  whatever the number of publishers, a file's hand overs during the wait are one write, and
  the loop is never woken per write. Writes of one file run one at a time and in order
  (positional `pwrite`s: a failed one is done again).
- A fault (ENOSPC, EIO) keeps the bytes that were not written, so nothing is lost: the next
  hand over or `close` tries again from the first unwritten byte, and `close` raises
  StorageError meanwhile (the pipeline retries it with backoff).
- Crash safety: the temp file carries TEMP_PREFIX, which listings skip and no key may use,
  and its writer holds an exclusive `flock` on it. What a crash leaves is removed at the next
  start (`remove_leftovers`): a temp file nobody holds a lock on, older than
  LEFTOVER_MIN_AGE_S (a put's temp file lives for milliseconds and is not locked).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import functools
import logging
import os
import queue
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from livechannel.storage import direct_io
from livechannel.storage.base import ObjectInfo
from livechannel.storage.keys import TEMP_PREFIX

if TYPE_CHECKING:
    from livechannel.storage.local import LocalStorage

log = logging.getLogger("livechannel.storage")

# Threads writing growing segments, per process. A write takes the device's time (~1 ms for
# 256 KiB with O_DIRECT on this project's virtio disk); a few threads keep a slow device busy
# without one file's wait holding up the others.
WRITE_THREADS = 4
# A temp file at least this old that no writer holds a lock on was left by a crash. A put's
# own temp file (not locked) lives for milliseconds; this keeps a start from removing one of
# a sibling worker's in-flight puts.
LEFTOVER_MIN_AGE_S = 60.0
# Hand overs wait and then go to the writing threads together: a few thread wake-ups a
# second for the process, not one per hand over of each publisher (waking a thread on
# another vCPU is an interrupt on a VM: ~5 % of the event loop's time at 10 publishers,
# profiled). A batch goes when it holds this many bytes: what the process holds for the
# writes is bounded by it, ~60 ms of 200 publishers at 2.66 Mbit/s (~20 KiB each) ...
BATCH_MAX_BYTES = 4 * 1024 * 1024
# ... or when it has waited this long (a few publishers: 10 at 2.66 Mbit/s fill it in ~1.3
# s). With 50 ms, 10 publishers' 128 KiB hand overs were a job each, two context switches of
# a writing thread apiece (~70 a second, 0.4 % of a core); with a second, each file's hand
# overs of the second are one write. Holds ~330 KiB of each stream at 2.66 Mbit/s at most.
BATCH_MAX_DELAY_S = 1.0
IOV_MAX = os.sysconf("SC_IOV_MAX")  # pieces one pwritev may take (1024 on Linux)

_jobs: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
_threads_lock = threading.Lock()
_threads: list[threading.Thread] = []


def _submit(job: Callable[[], None]) -> None:
    """Run `job` on a writing thread. A C queue and threads of our own: a hand over costs
    the event loop a put (and a futex wake), not a concurrent Future per write as an
    executor's `submit` does. Threads start on first use, so in the worker process that
    writes (after any fork)."""
    if len(_threads) < WRITE_THREADS:
        with _threads_lock:
            while len(_threads) < WRITE_THREADS:
                thread = threading.Thread(target=_work, name="segment-write", daemon=True)
                thread.start()
                _threads.append(thread)
    _jobs.put(job)


class _Batch:
    """The writers of one event loop handed bytes since its batch was last sent."""

    __slots__ = ("size", "timer", "writers")

    def __init__(self, timer: asyncio.TimerHandle) -> None:
        self.writers: list[LocalSegmentWriter] = []
        self.size = 0  # bytes handed over to them meanwhile
        self.timer = timer


_batches: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Batch] = weakref.WeakKeyDictionary()


def _later(writer: LocalSegmentWriter | None, size: int) -> None:
    """Drain `writer` with the next batch of this event loop; `size` more bytes handed over
    (writer None: to a writer already in the batch or being drained)."""
    loop = asyncio.get_running_loop()
    batch = _batches.get(loop)
    if batch is None:
        if writer is None:
            return  # its drain is running or queued: it takes the bytes, no batch to fill
        batch = _batches[loop] = _Batch(loop.call_later(BATCH_MAX_DELAY_S, _send_batch, loop))
    if writer is not None:
        batch.writers.append(writer)
    batch.size += size
    if batch.size >= BATCH_MAX_BYTES:
        batch.timer.cancel()
        _send_batch(loop)


def _send_batch(loop: asyncio.AbstractEventLoop) -> None:
    writers = _batches.pop(loop).writers
    step = -(-len(writers) // WRITE_THREADS)  # spread over the threads, a job each
    for start in range(0, len(writers), step):
        _submit(functools.partial(_drain_all, writers[start : start + step]))


def _drain_all(writers: list[LocalSegmentWriter]) -> None:
    for writer in writers:
        writer.drain()


def _work() -> None:
    while True:
        job = _jobs.get()
        try:
            job()
        except Exception:  # a job keeps its own faults; this is a bug, not a disk error
            log.exception("segment writer job failed")


class LocalSegmentWriter:
    def __init__(self, storage: LocalStorage, key: str, path: str, *, direct: bool) -> None:
        """`storage` makes the temp file, commits it (mode, fsync if asked, rename) and maps
        errors, as for its own puts."""
        self._storage = storage
        self._key = key
        self._path = path
        self._direct = direct
        self._lock = threading.Lock()  # the fields below it, between the loop and a thread
        self._queued: list[bytes] = []  # handed over, not yet given to a write
        self._queued_bytes = 0  # ... plus the bytes of a write in progress or failed
        self._scheduled = False  # a drain of this writer is submitted or running
        self._aborted = False
        self._io = threading.Lock()  # one thread at a time does this file's I/O
        self._fd = -1
        self._temp = ""
        self._offset = 0  # bytes (whole blocks when direct) on the file
        self._tail = b""  # the partial block after them, direct only
        self._info: ObjectInfo | None = None

    @property
    def pending_bytes(self) -> int:
        return self._queued_bytes + len(self._tail)

    # --- the event loop's side ----------------------------------------------------------

    def write(self, pieces: list[bytes]) -> None:
        size = sum(map(len, pieces))
        if not size:
            return
        with self._lock:
            if self._aborted:
                return
            self._queued.extend(pieces)
            self._queued_bytes += size
            scheduled, self._scheduled = self._scheduled, True
        # Already scheduled: the batch's drain (or the one running) takes these too.
        _later(None if scheduled else self, size)

    async def close(self) -> ObjectInfo:
        if self._info is None:
            loop = asyncio.get_running_loop()
            try:
                future: asyncio.Future[ObjectInfo] = loop.create_future()
                _submit(lambda: _settle(loop, future, self._close_sync))
                self._info = await future
            except OSError as e:
                raise self._storage.write_error(e, self._key) from e
        return self._info

    def abort(self) -> None:
        with self._lock:
            if self._aborted:
                return
            self._aborted = True
            self._queued = []
            self._queued_bytes = 0
        _submit(self._discard)

    # --- the writing threads' side ------------------------------------------------------

    def drain(self) -> None:
        """Write what was handed over (a writing thread, with the next batch)."""
        with self._io:
            while True:
                with self._lock:
                    pieces, self._queued = self._queued, []
                    if not pieces or self._aborted:
                        self._scheduled = False
                        return
                try:
                    written = self._write(pieces, final=False)
                except OSError:
                    # Kept for the next hand over or `close`, which reports the fault.
                    with self._lock:
                        self._queued[:0] = pieces
                        self._scheduled = False
                    return
                with self._lock:
                    self._queued_bytes -= written

    def _close_sync(self) -> ObjectInfo:
        with self._io:
            with self._lock:
                if self._aborted:
                    raise RuntimeError(f"{self._key}: closed after abort")
                pieces, self._queued = self._queued, []
            try:
                written = self._write(pieces, final=True)
            except BaseException:
                with self._lock:
                    self._queued[:0] = pieces
                raise
            with self._lock:
                self._queued_bytes -= written
            info = self._storage.commit(self._key, self._fd, self._temp, self._path)
            os.close(self._fd)  # renamed: the file is the object now
            self._fd, self._temp = -1, ""
            return info

    def _write(self, pieces: list[bytes], *, final: bool) -> int:
        """Append `pieces` (after the tail); the number of bytes of `pieces` now stored
        (or, for direct writes, held in the tail instead of the list)."""
        if self._fd < 0:
            self._open()
        size = sum(map(len, pieces))
        if self._direct:
            try:
                offset, tail = direct_io.write_blocks(
                    self._fd, [self._tail, *pieces], self._offset, final=final
                )
            except OSError as e:
                if e.errno != errno.EINVAL:
                    raise
                # The device wants a larger alignment than ALIGN: buffered from here on
                # (the blocks already written stay as they are).
                direct_io.disable(self._fd)
                self._direct = False
            else:
                self._offset, self._tail = offset, tail
                return size
        data = [self._tail, *pieces] if self._tail else pieces
        self._offset = _pwrite_all(self._fd, data, self._offset)
        self._tail = b""
        return size

    def _open(self) -> None:
        fd, temp = self._storage.create_temp(os.path.dirname(self._path))
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # "in use": not a leftover
            if self._direct and not direct_io.enable(fd):
                self._direct = False
        except BaseException:
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise
        self._fd, self._temp = fd, temp

    def _discard(self) -> None:
        with self._io:
            if self._fd >= 0:
                os.close(self._fd)
                with contextlib.suppress(OSError):
                    os.unlink(self._temp)
                self._fd, self._temp = -1, ""
            self._tail = b""

    def __del__(self) -> None:
        # Dropped without close or abort (a crashed task): free the descriptor at least;
        # the temp file is then a leftover for the next start.
        if self._fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self._fd)


def _settle(
    loop: asyncio.AbstractEventLoop,
    future: asyncio.Future[ObjectInfo],
    job: Callable[[], ObjectInfo],
) -> None:
    """Run `job` here (a writing thread) and hand its outcome to `future` on `loop`."""
    try:
        result = job()
    except BaseException as e:
        loop.call_soon_threadsafe(_set_exception, future, e)
    else:
        loop.call_soon_threadsafe(_set_result, future, result)


def _set_result(future: asyncio.Future[ObjectInfo], result: ObjectInfo) -> None:
    if not future.done():  # the awaiting task may have been cancelled meanwhile
        future.set_result(result)


def _set_exception(future: asyncio.Future[ObjectInfo], error: BaseException) -> None:
    if not future.done():
        future.set_exception(error)


def _pwrite_all(fd: int, pieces: list[bytes], offset: int) -> int:
    """pwritev the pieces at `offset`, resuming after short writes; the offset after them."""
    views = [memoryview(p) for p in pieces if p]
    while views:
        written = os.pwritev(fd, views[:IOV_MAX], offset)
        if written == 0:  # never for a regular file; retrying would spin forever
            raise OSError(errno.EIO, "the file took no bytes")
        offset += written
        done = 0
        while done < len(views) and written >= len(views[done]):
            written -= len(views[done])
            done += 1
        del views[:done]
        if written:
            views[0] = views[0][written:]
    return offset


def remove_leftovers(root: str, now_s: float | None = None) -> int:
    """Remove the temp files a crash left under `root` (see the module's docstring); the
    number removed. Runs in a thread at start; walks the whole bucket once."""
    now_s = time.time() if now_s is None else now_s
    removed = 0
    for path in _temp_files(root):
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            continue  # gone meanwhile (renamed by its writer), or not ours to open
        try:
            if now_s - os.fstat(fd).st_mtime < LEFTOVER_MIN_AGE_S:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # a live writer (this process or another) holds it
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
                removed += 1
        finally:
            os.close(fd)
    return removed


def _temp_files(root: str) -> Iterator[str]:
    todo = [root]
    while todo:
        directory = todo.pop()
        try:
            with os.scandir(directory) as it:
                for entry in it:
                    if entry.name.startswith(TEMP_PREFIX):
                        if entry.is_file(follow_symlinks=False):
                            yield entry.path
                    elif entry.is_dir(follow_symlinks=False):
                        todo.append(entry.path)
        except OSError:
            continue  # removed meanwhile, or unreadable: nothing of ours to clean there
