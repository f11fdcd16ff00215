"""Retention (docs/storage.md), on both storage backends: segments older than the cutoff go (index
entry first, then the object) unless a stored playlist names them or they are the live
window; unindexed old segment objects and old snapshots go too; discontinuity numbering never
goes back."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from livechannel.fleet.retention import playlist_keys, sweep_bucket
from livechannel.storage.base import ObjectStorage
from livechannel.storage.local import LocalStorage
from livechannel.storage.s3 import S3Storage
from livechannel.storage.s3_config import s3_settings
from livechannel.store.base import Acl, ChannelConfig, Segment
from livechannel.store.memory import MemoryStore
from livechannel.store.sqlite import SqliteStore
from tests.support.moto import MotoServer

HOUR_MS = 3_600_000
CDN = "https://cdn.example.com/live"
BUCKET = "live"


@pytest.fixture(params=["local", "s3"])
async def storage(
    request: pytest.FixtureRequest, tmp_path: Path, moto: MotoServer
) -> AsyncIterator[ObjectStorage]:
    if request.param == "local":
        s: ObjectStorage = LocalStorage(str(tmp_path / "objects"), fsync=False)
    else:
        s = S3Storage(s3_settings("t", moto.storage_table(moto.new_bucket()), {}, None))
    yield s
    await s.close()


@pytest.fixture(params=["sqlite", "memory"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[object]:
    s = await SqliteStore.open(str(tmp_path / "meta.db")) if request.param == "sqlite" else (
        await MemoryStore.open())  # fmt: skip
    yield s
    await s.close()


def playlist(*uris: str) -> bytes:
    body = "".join(f"#EXTINF:2.000,\n{u}\n" for u in uris)
    return f"#EXTM3U\n#EXT-X-TARGETDURATION:2\n{body}#EXT-X-ENDLIST\n".encode()


async def test_sweep_deletes_only_unreferenced_old_segments(
    storage: ObjectStorage, store: SqliteStore
) -> None:
    now = time.time_ns() // 1_000_000
    old, recent = now - 10 * HOUR_MS, now - 60_000
    await store.ensure_bucket(BUCKET, Acl.PRIVATE, now)
    await store.put_channel(BUCKET, "cam", ChannelConfig(frag_count=3), now)
    starts = [old + i * 2000 for i in range(9)] + [recent + i * 2000 for i in range(3)]
    segments = [
        Segment(BUCKET, "cam", seq, f"cam/{start}.ts", start, 2000, 3, 1, seq in (0, 4, 10))
        for seq, start in enumerate(starts)
    ]
    for s in segments:
        await storage.put(s.key, b"ts!", "")
        await store.add_segment(s)
    key = [s.key for s in segments]
    name = [k.rsplit("/", 1)[1] for k in key]
    # The live playlist names the last three; stored VOD playlists name 2, 3 and 5 in every
    # way a URI can: relative, bucket-absolute path, under the public base URL.
    await storage.put("cam/playlist.m3u8", playlist(*name[-3:]), "")
    await storage.put("cam/vod.m3u8", playlist(name[2], f"/{BUCKET}/{key[3]}"), "")
    await storage.put("cam/vod2.m3u8", playlist(f"{CDN}/{key[5]}"), "")
    # An old segment object the index lost (a crash between index and object delete), and an
    # old one in another (deleted) channel's prefix, which ages out too.
    await storage.put(f"cam/{old - 5000}.ts", b"ts!", "")
    await storage.put(f"gone/{old}.ts", b"ts!", "")
    # Snapshots: old ones go, recent ones stay, also where only snapshots live (a DestBucket).
    for snap in (f"cam/{old}.jpg", f"cam/{recent}.jpg", f"other/{old}.jpg", f"other/{recent}.jpg"):
        await storage.put(snap, b"jpg", "")
    discontinuities = await store.discontinuities_before(BUCKET, "cam", 11)
    assert discontinuities == 3

    done = await sweep_bucket(store, storage, BUCKET, now - HOUR_MS, CDN)

    kept = {2, 3, 5, 9, 10, 11}
    remaining = await store.segments_between(BUCKET, "cam", 0, 2**62)
    assert [s.seq for s in remaining] == sorted(kept)
    listed = {o.key for o in (await storage.list("", "", 1000)).objects}
    assert listed == {key[i] for i in kept} | {"cam/playlist.m3u8", "cam/vod.m3u8",
                                               "cam/vod2.m3u8", f"cam/{recent}.jpg",
                                               f"other/{recent}.jpg"}  # fmt: skip
    assert (done.segments_deleted, done.orphans_deleted, done.kept_referenced) == (6, 2, 3)
    assert done.snapshots_deleted == 2
    # The live playlist's numbering does not move: deleted discontinuities still count.
    assert await store.discontinuities_before(BUCKET, "cam", 11) == discontinuities
    assert [s.seq for s in await store.last_segments(BUCKET, "cam", 3)] == [9, 10, 11]

    again = await sweep_bucket(store, storage, BUCKET, now - HOUR_MS, CDN)
    assert (again.segments_deleted, again.orphans_deleted) == (0, 0)
    # Once the VOD playlists are gone, what they kept ages out as well.
    await storage.delete("cam/vod.m3u8")
    await storage.delete("cam/vod2.m3u8")
    later = await sweep_bucket(store, storage, BUCKET, now - HOUR_MS, CDN)
    assert later.segments_deleted == 3
    assert [s.seq for s in await store.segments_between(BUCKET, "cam", 0, 2**62)] == [9, 10, 11]


def test_playlist_uris_resolve_to_keys() -> None:
    text = playlist("1.ts", "../other/2.ts", "/live/cam/3.ts", f"{CDN}/cam/4%205.ts",
                    "https://elsewhere.example/x/cam/6.ts?sig=1")  # fmt: skip
    assert playlist_keys(text.decode(), "cam/vod.m3u8", CDN) == {
        "cam/1.ts", "other/2.ts", "cam/3.ts", "cam/4 5.ts", "cam/6.ts"}  # fmt: skip


async def test_the_service_sweeps_buckets_with_retention_hours(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Wiring: `retention_hours` in a bucket's storage table starts the sweeps in `serve`."""
    import asyncio

    from livechannel.fleet import retention
    from tests.support.service import ServiceThread

    monkeypatch.setattr(retention, "FIRST_SWEEP_DELAY_S", 0.0)
    data = tmp_path / "data"
    data.mkdir()
    now = time.time_ns() // 1_000_000
    store = await SqliteStore.open(str(data / "livechannel.db"))
    objects = LocalStorage(str(data / "buckets" / BUCKET), fsync=False)
    await store.ensure_bucket(BUCKET, Acl.PRIVATE, now)
    await store.put_channel(BUCKET, "cam", ChannelConfig(frag_count=1), now)
    for seq in range(3):
        start = now - 5 * HOUR_MS + seq * 2000
        await store.add_segment(Segment(BUCKET, "cam", seq, f"cam/{start}.ts", start, 2000, 1, 1,
                                        seq == 0))  # fmt: skip
        await objects.put(f"cam/{start}.ts", b"x", "")
    await store.close()

    svc = await asyncio.to_thread(
        lambda: ServiceThread(data, storage={"retention_hours": 2}).start()
    )
    try:
        last = f"cam/{now - 5 * HOUR_MS + 4000}.ts"  # the live window (FragCount 1) stays
        deadline = time.monotonic() + 10
        while True:
            indexed = svc.call(svc.store.segments_between(BUCKET, "cam", 0, 2**62))
            stored = [o.key for o in (await objects.list("cam/", "", 10)).objects]
            if [s.key for s in indexed] == stored == [last]:
                break
            assert time.monotonic() < deadline, (indexed, stored)
            await asyncio.sleep(0.1)
    finally:
        await asyncio.to_thread(svc.stop)


async def test_sweep_keeps_init_sections_while_a_segment_needs_them(
    storage: ObjectStorage, store: SqliteStore
) -> None:
    """fMP4: an init section goes once no kept segment (nor a playlist) needs it; one whose
    run of segments goes on past the cutoff stays."""
    now = time.time_ns() // 1_000_000
    old = now - 10 * HOUR_MS
    await store.ensure_bucket(BUCKET, Acl.PRIVATE, now)
    await store.put_channel(BUCKET, "cam", ChannelConfig(frag_count=2), now)
    # Run A: old only. Run B: starts old, goes on after the cutoff. Run C: old, but its
    # segment is named by a stored VOD playlist (through EXT-X-MAP and its URI).
    runs = {
        "A": [old, old + 2000],
        "B": [old + 10_000, now - 4000, now - 2000],
        "C": [old + 20_000],
    }
    inits = {run: f"cam/{starts[0]}.mp4" for run, starts in runs.items()}
    seq = 0
    for run, starts in sorted(runs.items(), key=lambda r: r[1][0]):
        await storage.put(inits[run], b"init", "")
        for start in starts:
            segment = Segment(BUCKET, "cam", seq, f"cam/{start}.m4s", start, 2000, 3, 1,
                              start == starts[0], inits[run])  # fmt: skip
            await storage.put(segment.key, b"m4s", "")
            await store.add_segment(segment)
            seq += 1
    c_name = f"{runs['C'][0]}"
    vod = f'#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MAP:URI="{c_name}.mp4"\n'
    vod += f"#EXTINF:2.000,\n{c_name}.m4s\n#EXT-X-ENDLIST\n"
    await storage.put("cam/vod.m3u8", vod.encode(), "")
    await sweep_bucket(store, storage, BUCKET, now - HOUR_MS)
    remaining = {o.key for o in (await storage.list("cam/", "", 1000)).objects}
    assert inits["A"] not in remaining and f"cam/{runs['A'][0]}.m4s" not in remaining
    assert inits["B"] in remaining and f"cam/{runs['B'][0]}.m4s" not in remaining
    assert inits["C"] in remaining and f"cam/{c_name}.m4s" in remaining
