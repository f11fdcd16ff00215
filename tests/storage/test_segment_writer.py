"""SegmentWriter (`open_writer`): a segment stored as it grows and made visible whole by
`close`, on every store (memory, local disk direct and buffered, S3 on moto); what only the
local one has: block edges, the O_DIRECT fallback, faults, abort and crash leftovers."""

from __future__ import annotations

import asyncio
import errno
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from livechannel.errors import InvalidObjectName, StorageError
from livechannel.storage import direct_io as direct_io_module
from livechannel.storage import local_writer
from livechannel.storage.base import ObjectStorage, SegmentWriter
from livechannel.storage.direct_io import ALIGN, BUFFER_BYTES
from livechannel.storage.keys import TEMP_PREFIX
from livechannel.storage.local import LocalStorage
from livechannel.storage.memory import MemoryStorage
from livechannel.storage.s3 import S3Storage
from livechannel.storage.s3_config import s3_settings
from tests.support.moto import MotoServer
from tests.support.pieces import irregular_pieces

WAIT_S = 5.0  # for the writing threads to get to a hand over; they take milliseconds


@pytest.fixture(params=["memory", "local-direct", "local-buffered", "s3"])
async def storage(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ObjectStorage]:
    s: ObjectStorage
    if request.param == "memory":
        s = MemoryStorage()
    elif request.param.startswith("local"):
        s = LocalStorage(str(tmp_path), direct_io=request.param == "local-direct")
    else:
        moto: MotoServer = request.getfixturevalue("moto")
        s = S3Storage(s3_settings("test", moto.storage_table(moto.new_bucket()), {}, None))
    yield s
    await s.close()


async def _read(storage: ObjectStorage, key: str) -> bytes:
    _, chunks = await storage.get(key)
    return b"".join([chunk async for chunk in chunks])


def _temp_files(root: Path) -> list[Path]:
    return [p for p in root.rglob(TEMP_PREFIX + "*")]


async def _until(check: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT_S
    while not check():
        assert time.monotonic() < deadline, "the writing threads did not get there"
        await asyncio.sleep(0.005)


def _count_submits(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    submitted: list[object] = []
    real_submit = local_writer._submit

    def submit(job: Callable[[], None]) -> None:
        submitted.append(job)
        real_submit(job)

    monkeypatch.setattr(local_writer, "_submit", submit)
    return submitted


def _hand_overs(body: bytes, seed: int) -> list[list[bytes]]:
    """`body` as the pipeline hands it over: irregular pieces in irregular batches."""
    pieces, batches, i = irregular_pieces(body, seed), [], 0
    while i < len(pieces):
        n = 1 + (i + seed) % 5
        batches.append(pieces[i : i + n])
        i += n
    return batches


async def test_a_streamed_segment_appears_whole_only_when_closed(storage: ObjectStorage) -> None:
    body = os.urandom(BUFFER_BYTES + 3 * ALIGN + 17)
    writer = storage.open_writer("c/1.ts")
    for batch in _hand_overs(body, 1):
        writer.write(batch)
        assert await storage.head("c/1.ts") is None
    assert (await storage.list("c/", "", 100)).objects == []
    info = await writer.close()
    assert (info.key, info.size, info.content_type) == ("c/1.ts", len(body), "video/MP2T")
    assert await _read(storage, "c/1.ts") == body
    assert [o.key for o in (await storage.list("", "", 100)).objects] == ["c/1.ts"]
    assert await writer.close() == info  # a second close changes nothing


async def test_an_aborted_segment_never_appears(storage: ObjectStorage, tmp_path: Path) -> None:
    writer = storage.open_writer("c/1.ts")
    writer.write([os.urandom(3 * ALIGN + 5)])
    writer.abort()
    writer.abort()  # idempotent
    assert writer.pending_bytes == 0
    assert await storage.head("c/1.ts") is None
    if isinstance(storage, LocalStorage):
        await _until(lambda: not _temp_files(tmp_path))


async def test_a_writer_refuses_a_bad_key_at_once(storage: ObjectStorage) -> None:
    with pytest.raises(InvalidObjectName):
        storage.open_writer("c/../x.ts")


# --- local disk: blocks, fallback, faults, leftovers --------------------------------------


@pytest.mark.parametrize("direct", [True, False])
@pytest.mark.parametrize(
    "size",
    [0, 1, ALIGN - 1, ALIGN, ALIGN + 1, BUFFER_BYTES - 1, BUFFER_BYTES + 1,
     2 * BUFFER_BYTES + 3 * ALIGN + 77],
)  # fmt: skip
async def test_streamed_bytes_are_exact_across_block_and_buffer_edges(
    tmp_path: Path, size: int, direct: bool
) -> None:
    storage = LocalStorage(str(tmp_path), direct_io=direct)
    body = os.urandom(size)
    writer = storage.open_writer("c/1.ts")
    for batch in _hand_overs(body, size):
        writer.write(batch)
    await writer.close()
    assert (tmp_path / "c" / "1.ts").read_bytes() == body
    assert _temp_files(tmp_path) == []


async def test_the_segment_is_on_disk_while_it_grows_and_memory_holds_a_block_at_most(
    tmp_path: Path,
) -> None:
    storage = LocalStorage(str(tmp_path))
    writer = storage.open_writer("c/1.ts")
    written = 0
    for i in range(5):
        writer.write([os.urandom(100_000 + i)])
        written += 100_000 + i
        await _until(lambda: writer.pending_bytes < ALIGN)  # only the partial block is held
        (temp,) = _temp_files(tmp_path)
        assert temp.stat().st_size == written - writer.pending_bytes
        assert temp.stat().st_size % ALIGN == 0
    await writer.close()
    assert (tmp_path / "c" / "1.ts").stat().st_size == written


@pytest.mark.parametrize("refused_at", ["fcntl", "pwrite"])
async def test_a_filesystem_that_refuses_direct_writes_gets_a_buffered_stream(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, refused_at: str
) -> None:
    """EINVAL when O_DIRECT is set (FUSE, older tmpfs) or at the first direct write (a device
    with a larger block than ALIGN): the rest of the file is written buffered."""

    def refuse(*args: object) -> None:
        raise OSError(errno.EINVAL, "Invalid argument")

    if refused_at == "fcntl":
        real_fcntl = direct_io_module.fcntl.fcntl

        def fcntl(fd: int, cmd: int, arg: int = 0) -> int:
            if cmd == direct_io_module.fcntl.F_SETFL and arg & os.O_DIRECT:
                refuse()
            return real_fcntl(fd, cmd, arg)

        monkeypatch.setattr(direct_io_module.fcntl, "fcntl", fcntl)
    else:
        monkeypatch.setattr(direct_io_module.os, "pwrite", refuse)
    storage = LocalStorage(str(tmp_path))
    body = os.urandom(BUFFER_BYTES + 3 * ALIGN + 5)
    writer = storage.open_writer("c/1.ts")
    for batch in _hand_overs(body, 3):
        writer.write(batch)
    await writer.close()
    assert (tmp_path / "c" / "1.ts").read_bytes() == body


async def test_a_write_fault_keeps_the_bytes_and_close_retries_from_there(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = LocalStorage(str(tmp_path))
    real_pwrite = direct_io_module.os.pwrite
    full = {"on": False}

    def pwrite(fd: int, data: memoryview, offset: int) -> int:
        if full["on"]:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_pwrite(fd, data, offset)

    monkeypatch.setattr(direct_io_module.os, "pwrite", pwrite)
    body = os.urandom(5 * 64 * 1024 + 99)
    writer = storage.open_writer("c/1.ts")
    writer.write([body[:100_000]])
    await _until(lambda: writer.pending_bytes < ALIGN)
    full["on"] = True  # the disk fills up
    writer.write([body[100_000:200_000]])
    await asyncio.sleep(0.05)
    writer.write([body[200_000:]])
    with pytest.raises(StorageError, match="No space left"):
        await writer.close()
    assert writer.pending_bytes >= len(body) - 100_000  # nothing was dropped
    assert await storage.head("c/1.ts") is None
    full["on"] = False  # space again
    info = await writer.close()
    assert info.size == len(body)
    assert (tmp_path / "c" / "1.ts").read_bytes() == body


async def test_a_segment_whose_name_is_a_directory_is_refused_at_close(tmp_path: Path) -> None:
    storage = LocalStorage(str(tmp_path))
    (tmp_path / "c" / "1.ts").mkdir(parents=True)
    writer = storage.open_writer("c/1.ts")
    writer.write([b"x" * 10])
    with pytest.raises(InvalidObjectName):
        await writer.close()
    writer.abort()
    await _until(lambda: not _temp_files(tmp_path))


CRASHING_WRITER = """
import asyncio, os, signal, sys, time
from livechannel.storage.local import LocalStorage

async def main():
    writer = LocalStorage(sys.argv[1]).open_writer("c/1.ts")
    writer.write([os.urandom(300_000)])
    while writer.pending_bytes >= 4096:
        await asyncio.sleep(0.01)
    print("written", flush=True)
    os.kill(os.getpid(), signal.SIGKILL)  # a crash mid-segment

asyncio.run(main())
"""


async def test_a_crash_leaves_a_temp_file_that_is_never_listed_and_removed_at_start(
    tmp_path: Path,
) -> None:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    run = subprocess.run([sys.executable, "-c", CRASHING_WRITER, str(tmp_path)], env=env,
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert run.returncode == -signal.SIGKILL, run.stderr
    assert "written" in run.stdout
    (leftover,) = _temp_files(tmp_path)
    assert leftover.stat().st_size >= 290_000  # what was streamed before the crash
    storage = LocalStorage(str(tmp_path))
    assert (await storage.list("", "", 100)).objects == []
    # A segment being written right now (by this process or a sibling) is never removed,
    # however old: its writer holds a lock on it.
    live = storage.open_writer("c/2.ts")
    live.write([b"y" * 10_000])
    await _until(lambda: len(_temp_files(tmp_path)) == 2)
    assert storage.remove_leftovers() == 0  # both are younger than LEFTOVER_MIN_AGE_S
    later_s = time.time() + local_writer.LEFTOVER_MIN_AGE_S + 1
    assert local_writer.remove_leftovers(str(tmp_path), later_s) == 1
    assert not leftover.exists()
    await live.close()
    assert (tmp_path / "c" / "2.ts").read_bytes() == b"y" * 10_000
    assert _temp_files(tmp_path) == []


def test_each_store_returns_a_segment_writer(tmp_path: Path) -> None:
    writers: list[SegmentWriter] = [
        LocalStorage(str(tmp_path)).open_writer("c/1.ts"),
        MemoryStorage().open_writer("c/1.ts"),
    ]
    for writer in writers:
        assert writer.pending_bytes == 0
        writer.abort()


async def test_hand_overs_of_many_writers_wake_the_threads_once_per_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Per batch, one job per writing thread, whatever the number of publishers."""
    submitted = _count_submits(monkeypatch)
    storage = LocalStorage(str(tmp_path))
    writers = [storage.open_writer(f"c{i}/1.ts") for i in range(40)]
    for writer in writers:
        writer.write([b"x" * 50_000])
    assert submitted == []  # nothing until the batch goes
    await _until(lambda: all(w.pending_bytes < ALIGN for w in writers))
    assert len(submitted) == local_writer.WRITE_THREADS
    for writer in writers:
        await writer.close()
    assert all((tmp_path / f"c{i}" / "1.ts").stat().st_size == 50_000 for i in range(40))


async def test_a_batch_goes_once_it_holds_its_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Many publishers: the batch goes when its bytes reach BATCH_MAX_BYTES, not after the
    wait, so what the process holds for the writes stays bounded by it."""
    monkeypatch.setattr(local_writer, "BATCH_MAX_DELAY_S", 60.0)
    monkeypatch.setattr(local_writer, "BATCH_MAX_BYTES", 100_000)
    submitted = _count_submits(monkeypatch)
    storage = LocalStorage(str(tmp_path))
    a, b = storage.open_writer("a/1.ts"), storage.open_writer("b/1.ts")
    a.write([b"a" * 60_000])
    assert submitted == []
    b.write([b"b" * 40_000])  # 100,000 bytes in the batch: it goes now
    assert len(submitted) == 2
    await _until(lambda: a.pending_bytes < ALIGN and b.pending_bytes < ALIGN)
    await a.close()
    await b.close()
    assert (tmp_path / "a" / "1.ts").read_bytes() == b"a" * 60_000


async def test_hand_overs_within_the_wait_are_one_job(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A few publishers: a file's hand overs while its batch waits are drained by one job
    (one wake-up of one writing thread), in order."""
    monkeypatch.setattr(local_writer, "BATCH_MAX_DELAY_S", 0.3)
    submitted = _count_submits(monkeypatch)
    storage = LocalStorage(str(tmp_path))
    writer = storage.open_writer("c/1.ts")
    pieces = [bytes([i]) * 30_000 for i in range(5)]
    for piece in pieces:
        writer.write([piece])
    assert submitted == []
    await _until(lambda: writer.pending_bytes < ALIGN)
    assert len(submitted) == 1
    await writer.close()
    assert (tmp_path / "c" / "1.ts").read_bytes() == b"".join(pieces)
