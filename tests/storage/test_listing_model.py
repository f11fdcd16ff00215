"""ListObjects against a brute-force model of OSS semantics, for random key sets and queries.

The local store walks directories with pruning; the memory store bisects a sorted list; the
model just sorts and filters every key, so any pruning or paging mistake shows as a difference.
"""

from __future__ import annotations

import asyncio
import tempfile

from hypothesis import given, settings
from hypothesis import strategies as st

from livechannel.storage.base import ObjectStorage
from livechannel.storage.local import LocalStorage
from livechannel.storage.memory import MemoryStorage

segment = st.text(alphabet="ab-0é", min_size=1, max_size=3).filter(lambda s: s not in (".", ".."))
keys = st.lists(st.lists(segment, min_size=1, max_size=3).map("/".join), max_size=12, unique=True)
probe = st.text(alphabet="ab-0é/", max_size=4)
delimiters = st.sampled_from(["", "/", "-", "a", "/a"])


def _storable(candidates: list[str]) -> list[str]:
    """Drop keys a filesystem cannot hold next to others ("a" beside "a/b")."""
    kept: list[str] = []
    for key in sorted(candidates, key=len):
        if not any(key.startswith(k + "/") or k.startswith(key + "/") for k in kept):
            kept.append(key)
    return kept


def _model(
    all_keys: list[str], prefix: str, marker: str, max_keys: int, delimiter: str
) -> tuple[list[str], list[str], bool, str]:
    entries: list[tuple[str, bool]] = []  # (key or common prefix, is_prefix)
    for key in sorted(all_keys):
        if not key.startswith(prefix):
            continue
        cut = key.find(delimiter, len(prefix)) if delimiter else -1
        entry = (key[: cut + len(delimiter)], True) if cut >= 0 else (key, False)
        if entry[0] > marker and entry not in entries:
            entries.append(entry)
    page = entries[:max_keys]
    truncated = len(entries) > max_keys
    return (
        [e for e, is_prefix in page if not is_prefix],
        [e for e, is_prefix in page if is_prefix],
        truncated,
        page[-1][0] if truncated else "",
    )


async def _check(
    storage: ObjectStorage,
    all_keys: list[str],
    queries: list[tuple[str, str, int, str]],
) -> None:
    for key in all_keys:
        await storage.put(key, b"x", "")
    for prefix, marker, max_keys, delimiter in queries:
        got = await storage.list(prefix, marker, max_keys, delimiter)
        actual = (
            [o.key for o in got.objects],
            got.common_prefixes,
            got.is_truncated,
            got.next_marker,
        )
        assert actual == _model(all_keys, prefix, marker, max_keys, delimiter), (
            prefix,
            marker,
            max_keys,
            delimiter,
        )
    await storage.close()


queries = st.lists(
    st.tuples(probe, probe, st.integers(min_value=1, max_value=6), delimiters),
    min_size=1,
    max_size=6,
)


@settings(max_examples=150, deadline=None)
@given(keys.map(_storable), queries)
def test_memory_listing_matches_model(
    all_keys: list[str], qs: list[tuple[str, str, int, str]]
) -> None:
    asyncio.run(_check(MemoryStorage(), all_keys, qs))


@settings(max_examples=150, deadline=None)
@given(keys.map(_storable), queries)
def test_local_listing_matches_model(
    all_keys: list[str], qs: list[tuple[str, str, int, str]]
) -> None:
    with tempfile.TemporaryDirectory() as root:
        asyncio.run(_check(LocalStorage(root, fsync=False), all_keys, qs))


@settings(max_examples=60, deadline=None)
@given(keys.map(_storable), st.integers(min_value=1, max_value=4), delimiters)
def test_paging_visits_each_entry_once(all_keys: list[str], max_keys: int, delimiter: str) -> None:
    async def run(storage: ObjectStorage) -> tuple[list[str], list[str]]:
        for key in all_keys:
            await storage.put(key, b"x", "")
        objects: list[str] = []
        prefixes: list[str] = []
        marker = ""
        while True:
            page = await storage.list("", marker, max_keys, delimiter)
            objects += [o.key for o in page.objects]
            prefixes += page.common_prefixes
            if not page.is_truncated:
                return objects, prefixes
            assert page.next_marker > marker  # progress: no endless loop
            marker = page.next_marker

    full = _model(all_keys, "", "", 10_000, delimiter)
    with tempfile.TemporaryDirectory() as root:
        for storage in (MemoryStorage(), LocalStorage(root, fsync=False)):
            assert asyncio.run(run(storage)) == (full[0], full[1])
