"""What the console reads: buckets, a page of channels with live figures, one channel's page,
and the URLs to publish and play it. Every figure comes from the metadata store (so one
console sees every worker's pushes); URLs are signed with the signed-in access key.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from aiohttp import web

from livechannel.auth.urls import signed_object_query, signed_publish_url
from livechannel.console import figures
from livechannel.console.routes import Console, Reply
from livechannel.console.session import Session
from livechannel.errors import InvalidArgument, NoSuchBucket, NoSuchLiveChannel
from livechannel.store.base import Acl, Channel

DEFAULT_PAGE = 50  # channels per page of the table
MAX_PAGE = 200  # each row costs one store query per refresh (every 2 s)
HISTORY = 10  # pushes on a channel's page: what GetLiveChannelHistory returns too
GRAPH_WINDOW_S = 5 * 60  # "the last minutes" of the bitrate graph
# Snapshots are looked for among the objects of the last few intervals (a bounded listing:
# the channel's prefix also holds every segment).
SNAPSHOT_LOOKBACK_INTERVALS = 3
SNAPSHOT_LIST_KEYS = 1000
# URLs the console signs: the user picks the lifetime of the ones to copy; the preview's
# own URL lasts this long (the page asks for a fresh one when it runs out).
MIN_URL_EXPIRY_S = 60
MAX_URL_EXPIRY_S = 30 * 24 * 3600  # a month; a leaked URL is worth no more than that
PREVIEW_EXPIRY_S = 3600
MAX_PARAM_CHARS = 1024


def param(request: web.Request, name: str, default: str | None = None) -> str:
    value = request.query.get(name, default)
    if value is None:
        raise InvalidArgument(f"{name} is required", ArgumentName=name)
    if len(value) > MAX_PARAM_CHARS:
        raise InvalidArgument(f"{name} is too long", ArgumentName=name)
    return value


def int_param(text: str, name: str, low: int, high: int) -> int:
    if not (text.isascii() and text.isdigit() and len(text) <= 12) or not low <= int(text) <= high:
        raise InvalidArgument(f"{name} must be an integer in [{low}, {high}]", ArgumentName=name)
    return int(text)


def bucket_of(console: Console, name: str) -> str:
    if name not in console.api.storages:
        raise NoSuchBucket("the bucket does not exist", BucketName=name)
    return name


async def channel_of(console: Console, bucket: str, name: str) -> Channel:
    channel = await console.api.store.get_channel(bucket_of(console, bucket), name)
    if channel is None:
        raise NoSuchLiveChannel("the live channel does not exist")
    return channel


async def buckets(request: web.Request, console: Console, session: Session) -> Reply:
    out = []
    for name in sorted(console.api.storages):
        record = await console.api.store.get_bucket(name)
        out.append({"name": name, "acl": (record.acl if record else Acl.PRIVATE).value})
    return {"buckets": out}


async def channels(request: web.Request, console: Console, session: Session) -> Reply:
    """A page of channels (names after `marker`, starting with `prefix`) with live figures."""
    bucket = bucket_of(console, param(request, "bucket"))
    prefix = param(request, "prefix", "")
    marker = param(request, "marker", "")
    limit = int_param(param(request, "limit", str(DEFAULT_PAGE)), "limit", 1, MAX_PAGE)
    store = console.api.store
    found = await store.list_channels(bucket, prefix, marker, limit + 1)
    page = found[:limit]
    now = console.api.now_ms()
    rows = [figures.row(ch, await store.live_push(bucket, ch.name), now) for ch in page]
    return {
        "bucket": bucket,
        "now_ms": now,
        "channels": rows,
        "next_marker": page[-1].name if len(found) > limit else None,
    }


async def _snapshot_url(console: Console, session: Session, channel: Channel, now: int) -> Any:
    snapshot = channel.config.snapshot
    if snapshot is None:
        return None
    dest = snapshot.dest_bucket or channel.bucket
    storage = console.api.storages.get(dest)
    if storage is None:
        return None
    since_ms = now - SNAPSHOT_LOOKBACK_INTERVALS * snapshot.interval_s * 1000 - 10_000
    prefix = f"{channel.name}/"
    listing = await storage.list(prefix, f"{prefix}{since_ms}", SNAPSHOT_LIST_KEYS)
    jpegs = [o for o in listing.objects if o.key.endswith(".jpg")]
    if not jpegs:
        return None
    latest = jpegs[-1]
    return {"url": object_url(console, session, dest, latest.key, PREVIEW_EXPIRY_S, now),
            "taken_ms": latest.last_modified_ms}  # fmt: skip


def object_url(
    console: Console, session: Session, bucket: str, key: str, expiry_s: int, now: int,
    process: str = "",
) -> str:  # fmt: skip
    """A same-origin, path-style signed URL: the page fetches it without CORS whatever
    host name the console was opened by."""
    secret = console.api.credentials[session.key_id]
    expires = now // 1000 + expiry_s
    query = signed_object_query(bucket, key, session.key_id, secret, expires, process)
    return f"/{quote(bucket, safe='')}/{quote(key, safe='/')}?{query}"


async def channel(request: web.Request, console: Console, session: Session) -> Reply:
    """One channel's page: its row, push history, bitrate per segment, latest snapshot."""
    bucket = param(request, "bucket")
    ch = await channel_of(console, bucket, param(request, "name"))
    store = console.api.store
    now = console.api.now_ms()
    live = await store.live_push(bucket, ch.name)
    history = await store.history(bucket, ch.name, HISTORY)
    segments = await store.segments_between(bucket, ch.name, now - GRAPH_WINDOW_S * 1000, now)
    return {
        "bucket": bucket,
        "now_ms": now,
        "channel": figures.row(ch, live, now),
        "history": [figures.push_json(p) for p in history],
        "bitrate": figures.bitrate_series(segments),
        "graph_window_s": GRAPH_WINDOW_S,
        "snapshot": await _snapshot_url(console, session, ch, now),
    }


async def urls(request: web.Request, console: Console, session: Session) -> Reply:
    """Publish URL (and its OBS split) and play URL signed for `expires_s`, and a preview URL."""
    bucket = param(request, "bucket")
    ch = await channel_of(console, bucket, param(request, "name"))
    expiry_s = int_param(
        param(request, "expires_s", "3600"), "expires_s", MIN_URL_EXPIRY_S, MAX_URL_EXPIRY_S
    )
    api = console.api
    now = api.now_ms()
    expires = now // 1000 + expiry_s
    secret = api.credentials[session.key_id]
    publish = signed_publish_url(api.urls, bucket, ch.name, session.key_id, secret, expires)
    server, _, stream_key = publish.rpartition("/")
    key = f"{ch.name}/{ch.config.playlist_name}"
    play = api.urls.play_url(bucket, ch.name, ch.config.playlist_name)
    record = await api.store.get_bucket(bucket)
    if (record.acl if record else Acl.PRIVATE) == Acl.PRIVATE:
        play += "?" + signed_object_query(bucket, key, session.key_id, secret, expires, "hls/sign")
    rtmps = None
    if api.urls.rtmps_port is not None:  # RTMP in TLS is served too: its URL beside
        url = signed_publish_url(api.urls, bucket, ch.name, session.key_id, secret, expires,
                                 tls=True)  # fmt: skip
        rtmps = {"publish_url": url, "obs_server": url.rpartition("/")[0],
                 "obs_stream_key": url.rpartition("/")[2]}  # fmt: skip
    return {
        "expires_ms": expires * 1000,
        "rtmps": rtmps,
        "publish_url": publish,
        "obs_server": server,
        "obs_stream_key": stream_key,
        "play_url": play,
        "preview_url": object_url(console, session, bucket, key, PREVIEW_EXPIRY_S, now, "hls/sign"),
    }
