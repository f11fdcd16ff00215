"""Retention: delete a bucket's segments older than N hours that no stored playlist names.

One sweep, per channel (every "<channel>/" prefix in storage, so the segments of a deleted
channel age out too):

1. list the channel's objects once: its playlists (`.m3u8`: the live one and every stored
   VOD playlist) and its segment objects;
2. read each playlist and resolve its URIs to keys (relative, bucket-absolute, or under the
   bucket's public base URL): those segments are kept, whatever their age. A playlist that
   cannot be read stops the channel's sweep: nothing is deleted on a guess;
3. indexed segments that ended before the cutoff, are referenced by no playlist and are not
   among the channel's last FragCount (the live window, which numbering continues from) leave
   the index first, then their objects are deleted: the index never names a missing object;
4. old segment objects the index does not know (a crash between those two steps) go too,
   and so do old snapshots (`<ms>.jpg`, in whichever bucket is their DestBucket).

A VOD playlist stored while a sweep runs can name a segment the sweep is deleting; sweeps are
rare and segments old, so the window is small, and the playlist then has a gap, nothing worse.
"""

from __future__ import annotations

import asyncio
import logging
import posixpath
import re
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from livechannel.errors import OssError, StorageError
from livechannel.storage.base import ObjectInfo, ObjectStorage
from livechannel.store.base import MetadataStore

log = logging.getLogger("livechannel.fleet.retention")

SWEEP_INTERVAL_S = 600.0  # segments expire by the hour; every 10 minutes is plenty
FIRST_SWEEP_DELAY_S = 30.0  # let start-up (and any republish) settle first
LIST_PAGE_KEYS = 1000  # one storage listing request per this many keys
MAX_PLAYLIST_BYTES = 8 * 1024 * 1024  # a day of 2 s segments is ~1.5 MB of playlist
# FragCount's default (OSS API reference, PutLiveChannel), for a channel that was deleted.
DEFAULT_WINDOW = 3
# What the pipeline names segments: "<ms>.ts" (MPEG-TS) or "<ms>.m4s" (fMP4).
SEGMENT_NAME = re.compile(r"[0-9]+\.(ts|m4s)")
# fMP4 init sections, named after the first segment that needs them: "<ms>.mp4".
INIT_NAME = re.compile(r"[0-9]+\.mp4")
# The URI attribute of the tags naming media objects (EXT-X-MAP, EXT-X-PART, PRELOAD-HINT).
TAG_URI = re.compile(r'^#EXT-X-(?:MAP|PART|PRELOAD-HINT):.*?(?<![A-Z-])URI="([^"]*)"')
# An init section is used by one run of consecutive segments of one push; a push idles out
# long before this, so the first segment within this after the cutoff tells whether a run
# that started before the cutoff goes on past it.
INIT_RUN_LOOKAHEAD_MS = 3_600_000
SNAPSHOT_NAME = re.compile(r"[0-9]+\.jpg")  # and snapshots: "<ms>.jpg" (snapshot.py)


@dataclass(slots=True)
class SweepResult:
    segments_deleted: int = 0  # indexed segments removed (index entry and object)
    orphans_deleted: int = 0  # segment objects the index did not know
    snapshots_deleted: int = 0  # snapshot JPEGs named before the cutoff
    kept_referenced: int = 0  # old enough, but named by a stored playlist


def playlist_keys(text: str, playlist_key: str, public_base_url: str) -> set[str]:
    """The object keys a playlist's URIs name (bucket-relative). Absolute URIs, whatever
    their host, name "<channel>/<file>": their last two path segments."""
    directory = posixpath.dirname(playlist_key)
    keys: set[str] = set()
    for line in text.splitlines():
        uri = line.strip()
        tag = TAG_URI.match(uri)
        if tag:
            uri = tag.group(1)
        if not uri or uri.startswith("#"):
            continue
        if public_base_url and uri.startswith(public_base_url + "/"):
            keys.add(unquote(urlsplit(uri[len(public_base_url) + 1 :]).path))
            continue
        parts = urlsplit(uri)
        path = unquote(parts.path)
        if parts.scheme or path.startswith("/"):
            keys.add("/".join(path.rstrip("/").split("/")[-2:]))
        else:
            keys.add(posixpath.normpath(posixpath.join(directory, path)))
    return keys


async def _list_objects(storage: ObjectStorage, prefix: str) -> list[ObjectInfo]:
    found: list[ObjectInfo] = []
    marker = ""
    while True:
        page = await storage.list(prefix, marker, LIST_PAGE_KEYS)
        found += page.objects
        if not page.is_truncated:
            return found
        marker = page.next_marker


async def _channel_prefixes(storage: ObjectStorage) -> list[str]:
    found: list[str] = []
    marker = ""
    while True:
        page = await storage.list("", marker, LIST_PAGE_KEYS, "/")
        found += page.common_prefixes
        if not page.is_truncated:
            return found
        marker = page.next_marker


async def _read(storage: ObjectStorage, key: str) -> str:
    _, chunks = await storage.get(key)
    parts: list[bytes] = []
    size = 0
    try:
        async for chunk in chunks:
            size += len(chunk)
            if size > MAX_PLAYLIST_BYTES:
                raise StorageError(f"playlist {key!r} is over {MAX_PLAYLIST_BYTES} bytes")
            parts.append(chunk)
    finally:
        aclose = getattr(chunks, "aclose", None)
        if aclose is not None:
            await aclose()
    return b"".join(parts).decode("utf-8", errors="replace")


async def sweep_channel(
    store: MetadataStore,
    storage: ObjectStorage,
    bucket: str,
    channel: str,
    cutoff_ms: int,
    public_base_url: str = "",
) -> SweepResult:
    result = SweepResult()
    objects = await _list_objects(storage, channel + "/")
    referenced: set[str] = set()
    for info in objects:
        if info.key.endswith(".m3u8"):
            referenced |= playlist_keys(await _read(storage, info.key), info.key, public_base_url)
    config = await store.get_channel(bucket, channel)
    window = config.config.frag_count if config is not None else DEFAULT_WINDOW
    live = {s.seq for s in await store.last_segments(bucket, channel, window)}
    indexed = await store.segments_between(bucket, channel, 0, cutoff_ms)
    expired = []
    for segment in indexed:
        if segment.start_ms + segment.duration_ms > cutoff_ms or segment.seq in live:
            continue
        if segment.key in referenced:
            result.kept_referenced += 1
            continue
        expired.append(segment)
    if expired:
        await store.delete_segments(bucket, channel, [s.seq for s in expired])
        for segment in expired:
            await storage.delete(segment.key)
        result.segments_deleted = len(expired)
    # A segment's name is its start time (wall clock at arrival), which is its index entry's
    # start_ms: an old-named object missing from `indexed` is in no index entry at all, and
    # one being uploaded right now has a new name.
    known = {s.key for s in indexed}
    gone = {s.seq for s in expired}
    # Init sections still needed: those of kept segments before the cutoff, and of the first
    # segment after it (the run it belongs to may have started before the cutoff).
    inits = {s.init_key for s in indexed if s.seq not in gone}
    after = await store.segments_between(
        bucket, channel, cutoff_ms, cutoff_ms + INIT_RUN_LOOKAHEAD_MS
    )
    inits |= {s.init_key for s in after[:1]}
    for info in objects:
        name = info.key.rsplit("/", 1)[-1]
        if INIT_NAME.fullmatch(name):
            if int(name[:-4]) < cutoff_ms and info.key not in inits | referenced:
                await storage.delete(info.key)
                result.orphans_deleted += 1
        elif (
            SEGMENT_NAME.fullmatch(name)
            and int(name.partition(".")[0]) < cutoff_ms
            and info.key not in known
            and info.key not in referenced
        ):
            await storage.delete(info.key)
            result.orphans_deleted += 1
        elif SNAPSHOT_NAME.fullmatch(name) and int(name[:-4]) < cutoff_ms:
            await storage.delete(info.key)  # no playlist names a snapshot
            result.snapshots_deleted += 1
    return result


async def sweep_bucket(
    store: MetadataStore,
    storage: ObjectStorage,
    bucket: str,
    cutoff_ms: int,
    public_base_url: str = "",
) -> SweepResult:
    total = SweepResult()
    for prefix in await _channel_prefixes(storage):
        channel = prefix[:-1]
        try:
            done = await sweep_channel(store, storage, bucket, channel, cutoff_ms, public_base_url)
        except (StorageError, OssError) as e:
            log.error("retention: %s/%s skipped this time: %s", bucket, channel, e)
            continue
        total.segments_deleted += done.segments_deleted
        total.orphans_deleted += done.orphans_deleted
        total.snapshots_deleted += done.snapshots_deleted
        total.kept_referenced += done.kept_referenced
    return total


async def retention_loop(
    store: MetadataStore,
    storage: ObjectStorage,
    bucket: str,
    retention_hours: float,
    public_base_url: str,
    now_ms: Callable[[], int],
    may_run: Callable[[], bool] = lambda: True,
) -> None:
    """Sweep the bucket every SWEEP_INTERVAL_S until cancelled (server.py owns the task).
    `may_run`: whether this worker runs the cluster's jobs now (one worker of all nodes)."""
    await asyncio.sleep(FIRST_SWEEP_DELAY_S)
    while True:
        if not may_run():
            await asyncio.sleep(SWEEP_INTERVAL_S)
            continue
        cutoff_ms = now_ms() - int(retention_hours * 3_600_000)
        try:
            done = await sweep_bucket(store, storage, bucket, cutoff_ms, public_base_url)
        except (StorageError, OssError) as e:
            log.error("retention sweep of %s failed: %s", bucket, e)
        else:
            if done.segments_deleted or done.orphans_deleted:
                log.info(
                    "retention: %s: deleted %d segments (+%d unindexed), kept %d that "
                    "playlists name",
                    bucket, done.segments_deleted, done.orphans_deleted, done.kept_referenced,
                )  # fmt: skip
        await asyncio.sleep(SWEEP_INTERVAL_S)
