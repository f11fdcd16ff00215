"""One behaviour for every ObjectStorage: the in-memory one, the local filesystem and S3 (moto:
real signed S3 requests over HTTP). What only S3 shows (times in whole seconds, its ETags) is
in tests/s3/test_s3_conformance.py."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from livechannel.errors import InvalidArgument, InvalidObjectName, NoSuchKey
from livechannel.storage.base import ObjectStorage
from livechannel.storage.local import LocalStorage
from livechannel.storage.memory import CHUNK_BYTES, MemoryStorage
from livechannel.storage.s3 import S3Storage
from livechannel.storage.s3_config import s3_settings
from tests.support.moto import MotoServer

ESCAPES = [
    "../x",
    "a/../../x",
    "a/..",
    "..",
    "./x",
    "a/./b",
    "/abs",
    "/etc/passwd",
    "a\\b",
    "..\\x",
    "a\x00b",
    "",
    "a//b",
    "a/",
    "x" * 1024,
    "é" * 512,  # 1024 bytes of UTF-8
    "\ud800",  # a lone surrogate is not UTF-8
]


# Where a file and S3 answer differently (modification times, what a PUT returns): S3's side
# is checked in tests/s3/test_s3_conformance.py.
MEMORY_AND_LOCAL = pytest.mark.parametrize("storage", ["memory", "local"], indirect=True)


@pytest.fixture(params=["memory", "local", "s3"])
async def storage(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ObjectStorage]:
    s: ObjectStorage
    if request.param == "memory":
        s = MemoryStorage()
    elif request.param == "local":
        s = LocalStorage(str(tmp_path))
    else:
        moto: MotoServer = request.getfixturevalue("moto")
        s = S3Storage(s3_settings("test", moto.storage_table(moto.new_bucket()), {}, None))
    yield s
    await s.close()


async def _read(storage: ObjectStorage, key: str, start: int = 0, end: int | None = None) -> bytes:
    _, chunks = await storage.get(key, start, end)
    return b"".join([chunk async for chunk in chunks])


@MEMORY_AND_LOCAL
async def test_put_head_get(storage: ObjectStorage) -> None:
    before_ms = time.time_ns() // 1_000_000 - 1000  # file systems round mtimes
    info = await storage.put("chan/1.ts", b"segment bytes", "ignored/type")
    assert (info.key, info.size) == ("chan/1.ts", 13)
    assert info.etag and info.etag.isascii() and '"' not in info.etag
    assert info.content_type == "video/MP2T"
    assert before_ms <= info.last_modified_ms <= time.time_ns() // 1_000_000 + 1000
    assert await storage.head("chan/1.ts") == info
    got, chunks = await storage.get("chan/1.ts")
    assert got == info
    assert b"".join([c async for c in chunks]) == b"segment bytes"


@pytest.mark.parametrize(
    ("key", "content_type"),
    [
        ("c/playlist.m3u8", "application/x-mpegURL"),
        ("c/1.ts", "video/MP2T"),
        ("c/x.bin", "application/octet-stream"),
    ],
)
async def test_content_type_follows_the_key(
    storage: ObjectStorage, key: str, content_type: str
) -> None:
    assert (await storage.put(key, b"x", "text/plain")).content_type == content_type
    head = await storage.head(key)
    assert head is not None and head.content_type == content_type


@MEMORY_AND_LOCAL
async def test_put_replaces(storage: ObjectStorage) -> None:
    first = await storage.put("c/playlist.m3u8", b"#EXTM3U\n1", "")
    second = await storage.put("c/playlist.m3u8", b"#EXTM3U\n22", "")
    assert first.etag != second.etag
    assert await _read(storage, "c/playlist.m3u8") == b"#EXTM3U\n22"
    assert (await storage.list("", "", 10)).objects == [second]


async def test_empty_object(storage: ObjectStorage) -> None:
    info = await storage.put("c/empty", b"", "")
    assert info.size == 0 and info.etag
    assert await _read(storage, "c/empty") == b""


@MEMORY_AND_LOCAL
async def test_put_of_pieces_stores_them_joined(storage: ObjectStorage) -> None:
    info = await storage.put("c/1.ts", [b"ab", b"", b"cde"], "")
    assert info.size == 5
    assert await _read(storage, "c/1.ts") == b"abcde"


async def test_missing_object(storage: ObjectStorage) -> None:
    await storage.put("c/1.ts", b"x", "")
    assert await storage.head("c/2.ts") is None
    assert await storage.head("c") is None  # a "directory" is not an object
    for key in ["c/2.ts", "c", "nope/1.ts", "c/1.ts/x"]:
        with pytest.raises(NoSuchKey):
            await storage.get(key)  # raised at once, not on first read


async def test_get_ranges(storage: ObjectStorage) -> None:
    data = bytes(range(256)) * 40
    await storage.put("c/r.ts", data, "")
    assert await _read(storage, "c/r.ts", 0, 1) == data[:1]
    assert await _read(storage, "c/r.ts", 100, 200) == data[100:200]
    assert await _read(storage, "c/r.ts", 5000) == data[5000:]
    assert await _read(storage, "c/r.ts", 10_000, 99_999) == data[10_000:]  # end is clamped
    assert await _read(storage, "c/r.ts", 7, 7) == b""
    assert await _read(storage, "c/r.ts", len(data)) == b""
    info, chunks = await storage.get("c/r.ts", 100, 200)
    assert info.size == len(data)  # info describes the whole object
    assert b"".join([c async for c in chunks]) == data[100:200]


async def test_get_streams_in_bounded_chunks(storage: ObjectStorage) -> None:
    data = bytes(range(251)) * (3 * CHUNK_BYTES // 251 + 7)
    await storage.put("c/big.ts", data, "")
    _, chunks = await storage.get("c/big.ts", 3, len(data) - 3)
    parts = [c async for c in chunks]
    assert len(parts) >= 3
    assert all(0 < len(p) <= CHUNK_BYTES for p in parts)
    assert b"".join(parts) == data[3:-3]


async def test_a_reader_keeps_the_version_it_opened(storage: ObjectStorage) -> None:
    await storage.put("c/p.m3u8", b"old" * 100_000, "")
    _, chunks = await storage.get("c/p.m3u8")
    await storage.put("c/p.m3u8", b"new", "")
    assert b"".join([c async for c in chunks]) == b"old" * 100_000


async def test_delete(storage: ObjectStorage) -> None:
    await storage.put("c/1.ts", b"x", "")
    await storage.put("c/2.ts", b"y", "")
    assert await storage.delete("c/1.ts") is True
    assert await storage.delete("c/1.ts") is False
    assert await storage.delete("c") is False  # a prefix is not an object
    assert await storage.delete("zz/top") is False
    assert await storage.head("c/1.ts") is None
    assert [o.key for o in (await storage.list("", "", 10)).objects] == ["c/2.ts"]
    await storage.put("c/1.ts", b"again", "")
    assert await _read(storage, "c/1.ts") == b"again"


@pytest.mark.parametrize("key", ESCAPES)
async def test_unsafe_keys_are_refused(storage: ObjectStorage, key: str) -> None:
    with pytest.raises(InvalidObjectName):
        await storage.put(key, b"x", "")
    with pytest.raises(InvalidObjectName):
        await storage.head(key)
    with pytest.raises(InvalidObjectName):
        await storage.get(key)
    with pytest.raises(InvalidObjectName):
        await storage.delete(key)
    assert (await storage.list("", "", 10)).objects == []


@pytest.mark.parametrize(
    "key", ["%2e%2e/x", "%2E%2E%2Fx", "...", "a/.../b", "a..b/c..", "é/ü ñ.ts"]
)
async def test_odd_but_safe_keys_are_literal(storage: ObjectStorage, key: str) -> None:
    await storage.put(key, b"literal", "")
    assert await _read(storage, key) == b"literal"
    assert [o.key for o in (await storage.list("", "", 10)).objects] == [key]


async def test_longest_key(storage: ObjectStorage) -> None:
    key = "/".join(["k" * 200] * 5) + "/" + "x" * 18  # 1023 bytes
    assert len(key.encode()) == 1023
    await storage.put(key, b"x", "")
    assert await _read(storage, key) == b"x"


# --- list -----------------------------------------------------------------------------------
async def _put_all(storage: ObjectStorage, keys: list[str]) -> None:
    for key in keys:
        await storage.put(key, key.encode(), "")


async def test_list_is_in_utf8_byte_order(storage: ObjectStorage) -> None:
    keys = ["a0", "a-c", "a/b", "a/b-c", "a/b0", "a/ba", "b", "Z", "é", "ä/x", "\U0001f600"]
    await _put_all(storage, keys)
    listed = [o.key for o in (await storage.list("", "", 100)).objects]
    assert listed == sorted(keys, key=lambda k: k.encode("utf-8"))
    assert listed[:5] == ["Z", "a-c", "a/b", "a/b-c", "a/b0"]


async def test_list_prefix_and_marker(storage: ObjectStorage) -> None:
    await _put_all(storage, ["c/1.ts", "c/2.ts", "c/p.m3u8", "cc/1.ts", "d/1.ts"])

    async def keys(prefix: str, marker: str) -> list[str]:
        return [o.key for o in (await storage.list(prefix, marker, 100)).objects]

    assert await keys("c/", "") == ["c/1.ts", "c/2.ts", "c/p.m3u8"]
    assert await keys("c", "") == ["c/1.ts", "c/2.ts", "c/p.m3u8", "cc/1.ts"]
    assert await keys("c/", "c/1.ts") == ["c/2.ts", "c/p.m3u8"]  # exclusive
    assert await keys("", "c/3") == ["c/p.m3u8", "cc/1.ts", "d/1.ts"]  # need not exist
    assert await keys("c/2", "") == ["c/2.ts"]
    assert await keys("x", "") == []
    assert await keys("../", "") == []
    assert await keys("", "e") == []


async def test_list_pages_with_next_marker(storage: ObjectStorage) -> None:
    keys = [f"c/{i:03}.ts" for i in range(23)]
    await _put_all(storage, keys)
    seen: list[str] = []
    marker = ""
    for _ in range(10):
        page = await storage.list("c/", marker, 5)
        seen += [o.key for o in page.objects]
        if not page.is_truncated:
            assert page.next_marker == ""
            break
        assert page.next_marker == page.objects[-1].key and len(page.objects) == 5
        marker = page.next_marker
    assert seen == keys
    exact = await storage.list("c/", "", 23)
    assert not exact.is_truncated and len(exact.objects) == 23


async def test_list_delimiter_like_oss_example(storage: ObjectStorage) -> None:
    # The example of OSS API reference, GetBucket (ListObjects): fun/test.jpg,
    # fun/movie/001.avi, fun/movie/007.avi; prefix fun/, delimiter /
    await _put_all(storage, ["fun/test.jpg", "fun/movie/001.avi", "fun/movie/007.avi"])
    result = await storage.list("fun/", "", 100, "/")
    assert [o.key for o in result.objects] == ["fun/test.jpg"]
    assert result.common_prefixes == ["fun/movie/"]
    assert not result.is_truncated
    top = await storage.list("", "", 100, "/")
    assert (top.objects, top.common_prefixes) == ([], ["fun/"])


async def test_list_common_prefixes_count_toward_max_keys(storage: ObjectStorage) -> None:
    await _put_all(storage, ["a.txt", "c1/1.ts", "c1/2.ts", "c2/1.ts", "c3/x/1.ts", "d.txt", "e/1"])
    pages = []
    marker = ""
    while True:
        page = await storage.list("", marker, 2, "/")
        pages.append(([o.key for o in page.objects], page.common_prefixes, page.next_marker))
        if not page.is_truncated:
            break
        marker = page.next_marker
    assert pages == [
        (["a.txt"], ["c1/"], "c1/"),
        ([], ["c2/", "c3/"], "c3/"),
        (["d.txt"], ["e/"], ""),
    ]


async def test_list_other_delimiters(storage: ObjectStorage) -> None:
    await _put_all(storage, ["c/1-a.ts", "c/1-b.ts", "c/2-a.ts", "c/3.ts", "c/x/9-z"])
    result = await storage.list("c/", "", 100, "-")
    assert [o.key for o in result.objects] == ["c/3.ts"]
    assert result.common_prefixes == ["c/1-", "c/2-", "c/x/9-"]
    multi = await storage.list("", "", 100, "/1-")
    assert [o.key for o in multi.objects] == ["c/2-a.ts", "c/3.ts", "c/x/9-z"]
    assert multi.common_prefixes == ["c/1-"]


async def test_list_rejects_max_keys_below_one(storage: ObjectStorage) -> None:
    with pytest.raises(InvalidArgument):
        await storage.list("", "", 0)
