"""What only the filesystem store has: atomic replacement, temp files, directories, errno."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import gc
import os
import stat
import subprocess
import threading
from pathlib import Path

import pytest

from livechannel.errors import InvalidObjectName, NoSuchKey, StorageError
from livechannel.storage import direct_io as direct_io_module
from livechannel.storage import local as local_module
from livechannel.storage.direct_io import ALIGN, BUFFER_BYTES
from livechannel.storage.local import TEMP_PREFIX, LocalStorage
from tests.support.pieces import irregular_pieces

BIG_BYTES = 8 * 1024 * 1024  # large enough that a non-atomic rewrite is caught half-done
REWRITES = 12


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def _open_fds(path: Path) -> int:
    """Descriptors of this process open on `path` (only those: other tests' services may
    still be closing sockets in their threads)."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            count += os.readlink(f"/proc/self/fd/{fd}") == str(path)
    return count


async def test_a_reader_never_sees_a_partial_object(tmp_path: Path) -> None:
    storage = LocalStorage(str(tmp_path))
    versions = [b"A" * BIG_BYTES, b"B" * BIG_BYTES]
    await storage.put("c/big.ts", versions[0], "")
    path = tmp_path / "c" / "big.ts"
    stop = threading.Event()
    bad: list[str] = []
    reads = 0

    def reader() -> None:
        nonlocal reads
        while not stop.is_set():
            data = path.read_bytes()
            reads += 1
            if data not in versions:
                bad.append(f"{len(data)} bytes, {data[:1]!r}..{data[-1:]!r}")

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for i in range(REWRITES):
            await storage.put("c/big.ts", versions[(i + 1) % 2], "")
            _, chunks = await storage.get("c/big.ts")
            assert b"".join([c async for c in chunks]) in versions
    finally:
        stop.set()
        thread.join()
    assert reads > REWRITES and bad == []


async def test_put_fsyncs_the_file_before_the_rename_and_the_directory_after(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        calls.append("fsync dir" if os.path.isdir(f"/proc/self/fd/{fd}") else "fsync file")
        real_fsync(fd)

    def replace(src: str, dst: str) -> None:
        calls.append("replace")
        real_replace(src, dst)

    monkeypatch.setattr(local_module.os, "fsync", fsync)
    monkeypatch.setattr(local_module.os, "replace", replace)
    await LocalStorage(str(tmp_path), fsync=True).put("c/1.ts", b"x", "")
    assert calls == ["fsync file", "replace", "fsync dir"]
    calls.clear()
    await LocalStorage(str(tmp_path)).put("c/2.ts", b"x", "")  # the default, as nginx-rtmp
    assert calls == ["replace"]


@pytest.mark.parametrize(
    ("target", "code", "permanent"),
    [
        ("replace", errno.ENOSPC, False),
        ("writev", errno.ENOSPC, False),
        ("writev", errno.EDQUOT, False),
        ("fsync", errno.EIO, False),
        ("open", errno.EROFS, True),
        ("open", errno.EACCES, True),
        ("makedirs", errno.EROFS, True),
    ],
)
async def test_write_failures_are_storage_errors_and_leave_nothing_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, target: str, code: int, permanent: bool
) -> None:
    storage = LocalStorage(str(tmp_path), fsync=True)
    old = await storage.put("c/p.m3u8", b"old", "")

    def fail(*args: object, **kwargs: object) -> None:
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(local_module.os, target, fail)
    with pytest.raises(StorageError) as caught:
        await storage.put("c/p.m3u8" if target != "makedirs" else "new/p.m3u8", b"new", "")
    monkeypatch.undo()
    assert caught.value.permanent is permanent
    assert errno.errorcode[code] in str(caught.value)
    assert await storage.head("c/p.m3u8") == old
    assert _files(tmp_path) == ["c", "c/p.m3u8"]  # no temp file left


async def test_read_failures_are_storage_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = LocalStorage(str(tmp_path))
    await storage.put("c/1.ts", b"x" * 10, "")
    _, chunks = await storage.get("c/1.ts")

    def fail(*args: object) -> bytes:
        raise OSError(errno.EIO, "I/O error")

    monkeypatch.setattr(local_module.os, "pread", fail)
    with pytest.raises(StorageError):
        await chunks.__anext__()
    monkeypatch.setattr(local_module.os, "scandir", fail)
    with pytest.raises(StorageError):
        await storage.list("", "", 10)


async def test_put_survives_a_delete_pruning_its_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A concurrent delete may rmdir the empty directory between makedirs and the temp open."""
    storage = LocalStorage(str(tmp_path))
    real_open = os.open
    raced = []

    def open_after_prune(path: str, flags: int, mode: int = 0o777) -> int:
        if TEMP_PREFIX in path and not raced:
            raced.append(path)
            os.rmdir(os.path.dirname(path))  # what the deleting thread does
        return real_open(path, flags, mode)

    monkeypatch.setattr(local_module.os, "open", open_after_prune)
    await storage.put("c/1.ts", b"x", "")
    assert raced and (tmp_path / "c" / "1.ts").read_bytes() == b"x"


async def test_concurrent_puts_and_deletes_in_one_directory(tmp_path: Path) -> None:
    storage = LocalStorage(str(tmp_path), fsync=False)
    for round_ in range(30):
        await storage.put("d/old", b"x", "")
        await asyncio.gather(storage.delete("d/old"), storage.put(f"d/new{round_}", b"y", ""))
        assert (tmp_path / "d" / f"new{round_}").read_bytes() == b"y"
        assert await storage.delete(f"d/new{round_}")
    assert _files(tmp_path) == []


async def test_temp_files_are_never_listed_nor_addressable(tmp_path: Path) -> None:
    storage = LocalStorage(str(tmp_path))
    await storage.put("c/1.ts", b"x", "")
    (tmp_path / "c" / f"{TEMP_PREFIX}0123").write_bytes(b"half")
    (tmp_path / f"{TEMP_PREFIX}dir").mkdir()
    (tmp_path / f"{TEMP_PREFIX}dir" / "x").write_bytes(b"half")
    listed = await storage.list("", "", 100)
    assert [o.key for o in listed.objects] == ["c/1.ts"]
    for key in [f"c/{TEMP_PREFIX}0123", f"{TEMP_PREFIX}dir/x"]:
        with pytest.raises(InvalidObjectName):
            await storage.get(key)


async def test_empty_directories_are_removed_after_delete(tmp_path: Path) -> None:
    storage = LocalStorage(str(tmp_path))
    await storage.put("a/b/c/1.ts", b"x", "")
    await storage.put("a/x.ts", b"x", "")
    assert await storage.delete("a/b/c/1.ts")
    assert _files(tmp_path) == ["a", "a/x.ts"]
    assert await storage.delete("a/x.ts")
    assert _files(tmp_path) == [] and tmp_path.is_dir()  # the root stays


async def test_a_file_and_a_directory_cannot_share_a_name(tmp_path: Path) -> None:
    storage = LocalStorage(str(tmp_path))
    await storage.put("a", b"file", "")
    with pytest.raises(InvalidObjectName):
        await storage.put("a/b", b"x", "")
    await storage.put("d/e", b"x", "")
    with pytest.raises(InvalidObjectName):
        await storage.put("d", b"x", "")
    assert _files(tmp_path) == ["a", "d", "d/e"]


async def test_segment_longer_than_a_file_name_is_refused(tmp_path: Path) -> None:
    storage = LocalStorage(str(tmp_path))
    await storage.put("c/" + "x" * 255, b"x", "")
    with pytest.raises(InvalidObjectName):
        await storage.put("c/" + "x" * 256, b"x", "")


async def test_etag_comes_from_stat_and_changes_with_every_put(tmp_path: Path) -> None:
    storage = LocalStorage(str(tmp_path))
    first = await storage.put("c/p.m3u8", b"same", "")
    st = (tmp_path / "c" / "p.m3u8").stat()
    assert first.etag == f"{st.st_ino:X}-4-{st.st_mtime_ns:X}"
    assert await storage.head("c/p.m3u8") == first
    # Same bytes, same size, likely the same mtime tick: the new inode still tells them apart,
    # so a player's If-None-Match never gets a 304 for a playlist that was rewritten.
    second = await storage.put("c/p.m3u8", b"same", "")
    assert second.etag != first.etag
    info, chunks = await storage.get("c/p.m3u8")
    await chunks.aclose()
    assert info == second == (await storage.list("c/", "", 10)).objects[0]


async def test_put_of_pieces_writes_them_in_order_past_iov_max_and_short_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pieces = [bytes([i % 251]) * (i % 7) for i in range(3 * local_module.IOV_MAX + 5)]
    storage = LocalStorage(str(tmp_path), direct_io=False)  # buffered puts use writev
    info = await storage.put("c/1.ts", pieces, "")
    assert (tmp_path / "c" / "1.ts").read_bytes() == b"".join(pieces)
    assert info.size == sum(map(len, pieces))
    real_writev = local_module.os.writev
    calls: list[int] = []

    def short_writev(fd: int, buffers: list[memoryview]) -> int:
        calls.append(len(buffers))
        assert len(buffers) <= local_module.IOV_MAX
        data = b"".join(buffers)[:13]  # at most 13 bytes per call, cutting pieces anywhere
        return real_writev(fd, [data])

    monkeypatch.setattr(local_module.os, "writev", short_writev)
    await storage.put("c/2.ts", pieces, "")
    assert (tmp_path / "c" / "2.ts").read_bytes() == b"".join(pieces)
    assert len(calls) >= info.size // 13


async def test_symlinks_are_not_objects(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.write_bytes(b"secret")
    root = tmp_path / "root"
    storage = LocalStorage(str(root))
    await storage.put("c/1.ts", b"x", "")
    (root / "c" / "link.ts").symlink_to(outside)
    with pytest.raises(NoSuchKey):
        await storage.get("c/link.ts")
    assert await storage.head("c/link.ts") is None
    assert [o.key for o in (await storage.list("", "", 10)).objects] == ["c/1.ts"]
    assert await storage.delete("c/link.ts") is False


async def test_abandoned_downloads_close_their_file(tmp_path: Path) -> None:
    storage = LocalStorage(str(tmp_path))
    await storage.put("c/big.ts", b"x" * (3 * local_module.CHUNK_BYTES), "")
    big = Path(storage.root) / "c" / "big.ts"
    before = _open_fds(big)
    _, never_read = await storage.get("c/big.ts")
    _, half_read = await storage.get("c/big.ts")
    await half_read.__anext__()
    _, closed = await storage.get("c/big.ts")
    await closed.aclose()
    assert _open_fds(big) == before + 2
    del never_read, half_read
    gc.collect()
    assert _open_fds(big) == before
    _, read_all = await storage.get("c/big.ts")
    assert sum([len(c) async for c in read_all]) == 3 * local_module.CHUNK_BYTES
    assert _open_fds(big) == before  # closed at the end, without waiting for the collector


async def test_root_is_created(tmp_path: Path) -> None:
    storage = LocalStorage(str(tmp_path / "new" / "bucket"))
    await storage.put("c/1.ts", b"x", "")
    assert (tmp_path / "new" / "bucket" / "c" / "1.ts").read_bytes() == b"x"


async def test_root_that_cannot_be_created_is_a_storage_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(StorageError):
        LocalStorage(str(tmp_path / "file" / "bucket"))


def test_fsync_is_a_bucket_storage_option(tmp_path: Path) -> None:
    from livechannel.config import BucketConfig, ConfigError
    from livechannel.storage.factory import make_storage

    def made(table: dict[str, object]) -> LocalStorage:
        storage = make_storage(BucketConfig("live", storage=table), tmp_path)
        assert isinstance(storage, LocalStorage)
        return storage

    assert made({}).fsync is False
    assert made({"fsync": True}).fsync is True
    with pytest.raises(ConfigError, match="fsync: expected true or false"):
        made({"fsync": "yes"})


def cached_bytes(path: Path) -> int:
    """Bytes of `path` in the page cache (fincore(1), util-linux: mincore(2) on a mapping)."""
    out = subprocess.run(["fincore", "--bytes", "--noheadings", "--output", "RES", str(path)],
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    return int(out)


def filesystem_type(path: Path) -> str:
    return subprocess.run(["stat", "-f", "-c", "%T", str(path)], capture_output=True, text=True,
                          check=True).stdout.strip()  # fmt: skip


@pytest.mark.parametrize(
    "size",
    [0, 1, ALIGN - 1, ALIGN, ALIGN + 1, BUFFER_BYTES - 1, BUFFER_BYTES, BUFFER_BYTES + 1,
     2 * BUFFER_BYTES + 12345],
)  # fmt: skip
async def test_direct_puts_keep_every_byte_across_block_and_buffer_edges(
    tmp_path: Path, size: int
) -> None:
    storage = LocalStorage(str(tmp_path))
    body = os.urandom(size)
    info = await storage.put("c/1.ts", irregular_pieces(body, size), "video/MP2T")
    assert info.size == size
    assert (tmp_path / "c" / "1.ts").read_bytes() == body
    _, chunks = await storage.get("c/1.ts")
    assert b"".join([c async for c in chunks]) == body


async def test_media_objects_bypass_the_page_cache_and_playlists_do_not(tmp_path: Path) -> None:
    if filesystem_type(tmp_path) == "tmpfs":
        pytest.skip("tmpfs keeps every file in memory: there is no cache to bypass")
    body = os.urandom(3 * BUFFER_BYTES // 2 + 7)
    direct, buffered = (
        LocalStorage(str(tmp_path / "d")),
        LocalStorage(str(tmp_path / "b"), direct_io=False),
    )
    await direct.put("c/1.ts", irregular_pieces(body, 1), "video/MP2T")
    await direct.put("c/1.jpg", body[:100_000], "image/jpeg")
    await direct.put("c/playlist.m3u8", b"#EXTM3U\n" * 1000, "")
    await buffered.put("c/1.ts", body, "video/MP2T")
    assert cached_bytes(tmp_path / "d" / "c" / "1.ts") == 0
    assert cached_bytes(tmp_path / "d" / "c" / "1.jpg") == 0
    assert cached_bytes(tmp_path / "d" / "c" / "playlist.m3u8") > 0  # read by every player
    assert cached_bytes(tmp_path / "b" / "c" / "1.ts") >= len(body)  # whole pages


@pytest.mark.parametrize("refused_at", ["fcntl", "pwrite"])
async def test_a_filesystem_that_refuses_direct_writes_gets_buffered_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, refused_at: str
) -> None:
    """Some filesystems refuse O_DIRECT when it is set (FUSE, older tmpfs), a device with a
    larger block than ALIGN at the first write: both EINVAL, both end in a whole object."""

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
    body = os.urandom(BUFFER_BYTES + 5)
    info = await storage.put("c/1.ts", irregular_pieces(body, 2), "video/MP2T")
    assert info.size == len(body)
    assert (tmp_path / "c" / "1.ts").read_bytes() == body


async def test_a_direct_write_that_takes_no_bytes_fails_instead_of_spinning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(direct_io_module.os, "pwrite", lambda fd, data, offset: 0)
    storage = LocalStorage(str(tmp_path))
    with pytest.raises(StorageError, match="Input/output error"):
        await storage.put("c/1.ts", b"x" * 5000, "video/MP2T")
    assert _files(tmp_path) == ["c"]  # the temp file is gone too


def test_direct_io_is_a_bucket_storage_option(tmp_path: Path) -> None:
    from livechannel.config import BucketConfig, ConfigError
    from livechannel.storage.factory import make_storage

    def made(table: dict[str, object]) -> LocalStorage:
        storage = make_storage(BucketConfig("live", storage=table), tmp_path)
        assert isinstance(storage, LocalStorage)
        return storage

    assert made({}).direct_io is True
    assert made({"direct_io": False}).direct_io is False
    for bad in (0, "no", None):
        with pytest.raises(ConfigError, match="direct_io: expected true or false"):
            made({"direct_io": bad})


async def test_object_file_mode_is_private_for_private_buckets(tmp_path: Path) -> None:
    """Objects were written 0644 whatever the bucket's ACL: any local user read a private
    bucket's segments. Now owner-only by default for a private bucket; `file_mode` sets it."""
    from livechannel.config import BucketConfig, ConfigError
    from livechannel.storage.factory import make_storage
    from livechannel.store.base import Acl

    async def mode_of(acl: Acl, table: dict[str, object]) -> int:
        root = tmp_path / f"{acl.value}-{len(table)}"
        storage = make_storage(BucketConfig("live", acl, {"root": str(root), **table}), tmp_path)
        await storage.put("c/1.ts", b"x" * 5000, "video/MP2T")
        await storage.put("c/playlist.m3u8", b"#EXTM3U\n", "application/x-mpegURL")
        modes = {stat.S_IMODE((root / "c" / n).stat().st_mode) for n in ("1.ts", "playlist.m3u8")}
        (mode,) = modes
        return mode

    assert await mode_of(Acl.PRIVATE, {}) == 0o600
    assert await mode_of(Acl.PUBLIC_READ, {}) == 0o644
    assert await mode_of(Acl.PRIVATE, {"file_mode": "0640"}) == 0o640
    for bad in ("0400", "rw-r--r--", 0o644, "01777"):
        with pytest.raises(ConfigError, match="file_mode"):
            make_storage(BucketConfig("live", storage={"file_mode": bad}), tmp_path)
