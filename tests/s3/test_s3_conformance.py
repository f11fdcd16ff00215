"""What only S3 needs, on moto (real signed S3 requests over HTTP): the times and ETags S3
reports. The shared ObjectStorage conformance suite runs on S3 too, in
tests/storage/test_storage_conformance.py."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncIterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from livechannel.storage.base import ListResult
from livechannel.storage.memory import MemoryStorage
from livechannel.storage.s3 import S3Storage
from livechannel.storage.s3_config import s3_settings
from tests.support.moto import MotoServer


def make(moto: MotoServer, bucket: str, **extra: object) -> S3Storage:
    return S3Storage(s3_settings("test", moto.storage_table(bucket, **extra), {}, None))


@pytest.fixture
async def storage(moto: MotoServer) -> AsyncIterator[S3Storage]:
    s = make(moto, moto.new_bucket())
    yield s
    await s.close()


async def _read(storage: S3Storage, key: str) -> bytes:
    _, chunks = await storage.get(key)
    return b"".join([c async for c in chunks])


# --- where S3 differs from a file: times come in whole seconds, a PUT answers no time -------
async def test_put_head_get_on_s3(storage: S3Storage) -> None:
    before_ms = (time.time_ns() // 1_000_000 // 1000 - 1) * 1000
    info = await storage.put("chan/1.ts", b"segment bytes", "ignored/type")
    assert (info.key, info.size) == ("chan/1.ts", 13)
    assert info.etag == hashlib.md5(b"segment bytes").hexdigest().upper()
    assert info.content_type == "video/MP2T"
    head = await storage.head("chan/1.ts")
    assert head is not None
    assert (head.key, head.size, head.etag, head.content_type) == (
        info.key,
        info.size,
        info.etag,
        info.content_type,
    )
    assert before_ms <= head.last_modified_ms <= time.time_ns() // 1_000_000 + 1000
    assert head.last_modified_ms % 1000 == 0
    assert abs(head.last_modified_ms - info.last_modified_ms) <= 2000
    got, chunks = await storage.get("chan/1.ts")
    assert got == head
    assert b"".join([c async for c in chunks]) == b"segment bytes"
    listed = (await storage.list("", "", 10)).objects
    assert listed == [head]  # listing and HEAD agree to the second


async def test_put_replaces_on_s3(storage: S3Storage) -> None:
    first = await storage.put("c/playlist.m3u8", b"#EXTM3U\n1", "")
    second = await storage.put("c/playlist.m3u8", b"#EXTM3U\n22", "")
    assert first.etag != second.etag
    assert await _read(storage, "c/playlist.m3u8") == b"#EXTM3U\n22"
    [listed] = (await storage.list("", "", 10)).objects
    assert (listed.etag, listed.size) == (second.etag, second.size)


async def test_prefix_keeps_buckets_apart(moto: MotoServer) -> None:
    bucket = moto.new_bucket()
    a, b = make(moto, bucket, prefix="tenant-a"), make(moto, bucket, prefix="tenant-b/live")
    try:
        await a.put("c/1.ts", b"a", "")
        await b.put("c/1.ts", b"b", "")
        assert await _read(a, "c/1.ts") == b"a"
        assert await _read(b, "c/1.ts") == b"b"
        assert [o.key for o in (await a.list("", "", 10)).objects] == ["c/1.ts"]
        assert (await b.list("c/", "", 10, "/")).objects[0].key == "c/1.ts"
        whole = make(moto, bucket)
        keys = [o.key for o in (await whole.list("", "", 10)).objects]
        assert keys == ["tenant-a/c/1.ts", "tenant-b/live/c/1.ts"]
        await whole.close()
    finally:
        await a.close()
        await b.close()


async def test_list_skips_over_collapsed_prefixes(storage: S3Storage) -> None:
    """A delimiter listing of many channels must not walk every segment of each."""
    for channel in ("c1", "c2", "c3"):
        for i in range(30):
            await storage.put(f"{channel}/{i:04}.ts", b"x", "")
    await storage.put("top.txt", b"x", "")
    page = await storage.list("", "", 3, "/")
    assert page.common_prefixes == ["c1/", "c2/", "c3/"] and page.is_truncated
    rest = await storage.list("", page.next_marker, 3, "/")
    assert [o.key for o in rest.objects] == ["top.txt"] and not rest.is_truncated
    inside = await storage.list("c2/", "c2/0027.ts", 5, "/")
    assert [o.key for o in inside.objects] == ["c2/0028.ts", "c2/0029.ts"]


# --- listing as a model: S3's rebuilt OSS paging answers exactly like the in-memory store ---
KEY_ALPHABET = "ab-/.é%"  # separators, a multi-byte character and characters S3 escapes
MODEL_KEYS = sorted(
    {"a", "a/b", "a/b/c", "a-b/c", "a/.x", "b/é/a", "b/é-a", "ab/a", "é", "é/a/b", "%/a", "a.b"}
)


def test_list_matches_the_in_memory_model(moto: MotoServer) -> None:
    loop = asyncio.new_event_loop()
    s3 = make(moto, moto.new_bucket())
    model = MemoryStorage()

    async def fill() -> None:
        for key in MODEL_KEYS:
            await s3.put(key, key.encode(), "")
            await model.put(key, key.encode(), "")

    loop.run_until_complete(fill())
    text = st.text(alphabet=KEY_ALPHABET + "\x00\\", max_size=5)

    @settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))
    @given(prefix=text, marker=text, delimiter=st.sampled_from(["", "/", "-", "é", "/a"]),
           max_keys=st.integers(1, 4))  # fmt: skip
    def check(prefix: str, marker: str, delimiter: str, max_keys: int) -> None:
        async def both() -> tuple[ListResult, ListResult]:
            return (await s3.list(prefix, marker, max_keys, delimiter),
                    await model.list(prefix, marker, max_keys, delimiter))  # fmt: skip

        got, want = loop.run_until_complete(both())
        assert [o.key for o in got.objects] == [o.key for o in want.objects]
        assert (got.common_prefixes, got.is_truncated, got.next_marker) == (
            want.common_prefixes, want.is_truncated, want.next_marker)  # fmt: skip

    try:
        check()
    finally:
        loop.run_until_complete(s3.close())
        loop.close()
