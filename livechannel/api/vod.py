"""GetVodPlaylist and PostVodPlaylist (OSS API reference): a finished playlist of a time range.

Segments come from the store's segment index (`segments_between`, by the wall-clock time each
segment started). Segment URIs are bare names (`<ms>.ts`), relative to the channel's directory,
in both: the example response in OSS API reference, GetVodPlaylist lists `1543895706266.ts`,
as the live playlist and PostVodPlaylist's object do, and a client saves the GET body next to
the segments, where it plays. (Resolved against the GET's own URL, the bucket root, they do
not: docs/api.md, "VOD playlists", says why we follow the reference anyway.)

A bucket with a public base URL (a CDN; docs/storage.md) gets absolute segment URIs under it
in both, so players fetch the segments from there rather than from us.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from urllib.parse import quote

from aiohttp import web

from livechannel.api.call import Call
from livechannel.api.channel_config import check_playlist_name
from livechannel.api.context import ApiContext
from livechannel.api.responses import empty_response
from livechannel.errors import InvalidArgument, NoSuchBucket, NoSuchLiveChannel
from livechannel.hls.playlist import PlaylistEntry, render, vod_playlist
from livechannel.storage.base import ObjectInfo, content_type_for
from livechannel.store.base import Segment

MAX_VOD_SPAN_S = 24 * 3600  # OSS API reference, GetVodPlaylist: the span may be at most one day
PLAYLIST_CONTENT_TYPE = content_type_for("x.m3u8")


def _unix_s(call: Call, name: str) -> int:
    text = call.target.param(name)
    if not text or not (text.isascii() and text.isdigit()) or len(text) > 12:
        raise InvalidArgument(
            f"{name} must be a Unix time in seconds", ArgumentName=name, ArgumentValue=text or ""
        )
    return int(text)


async def segments_in(
    ctx: ApiContext, bucket: str, channel: str, start_s: int, end_s: int
) -> list[Segment]:
    """The segments a VOD playlist of [start_s, end_s] names; shared with the console."""
    if end_s <= start_s:
        raise InvalidArgument("endTime must be greater than startTime", ArgumentName="endTime")
    if end_s - start_s > MAX_VOD_SPAN_S:
        raise InvalidArgument("the time span may be at most one day", ArgumentName="endTime")
    if await ctx.store.get_channel(bucket, channel) is None:
        raise NoSuchLiveChannel("the live channel does not exist")
    segments = await ctx.store.segments_between(bucket, channel, start_s * 1000, end_s * 1000)
    if not segments:
        # What real OSS answers for an empty range (spec, "what the SDK expects" 12).
        raise InvalidArgument("no segment was produced in that time range")
    return segments


async def _segments(call: Call, channel: str) -> list[Segment]:
    start_s = _unix_s(call, "startTime")
    end_s = _unix_s(call, "endTime")
    return await segments_in(call.ctx, call.bucket, channel, start_s, end_s)


def playlist_text(segments: list[Segment], uri_of: Callable[[str], str]) -> str:
    """`uri_of` turns an object key (a segment's, or its fMP4 init section's) into its URI."""
    entries = [
        PlaylistEntry(
            uri=uri_of(s.key),
            map_uri=uri_of(s.init_key) if s.init_key else "",
            duration_ms=s.duration_ms,
            # A push's first segment starts a new timeline; the playlist's first needs no tag.
            discontinuity=s.discontinuity and i > 0,
        )
        for i, s in enumerate(segments)
    ]
    return render(vod_playlist(entries))


def _uri_in_channel(ctx: ApiContext, bucket: str, channel: str) -> Callable[[str], str]:
    """An object's URI as seen from the channel's directory, or under the bucket's public base
    URL (docs/storage.md, public_base_url) when it has one."""
    prefix = channel + "/"

    def uri_of(key: str) -> str:
        public = ctx.urls.public_url(bucket, key)
        if public is not None:
            return public
        inside = key[len(prefix) :] if key.startswith(prefix) else "../" + key
        return quote(inside, safe="/")

    return uri_of


async def get_vod_playlist(call: Call) -> web.StreamResponse:
    channel = call.target.key
    segments = await _segments(call, channel)
    body = playlist_text(segments, _uri_in_channel(call.ctx, call.bucket, channel)).encode()
    return web.Response(
        status=200,
        body=body,
        headers={
            "Content-Type": PLAYLIST_CONTENT_TYPE,
            "ETag": f'"{hashlib.md5(body).hexdigest().upper()}"',
        },
    )


def _vod_channel(key: str) -> str:
    channel, slash, name = key.partition("/")
    if not slash or not channel:
        raise InvalidArgument("the object must be <channel>/<playlist>.m3u8")
    check_playlist_name(name, "PlaylistName")
    return channel


async def store_vod_playlist(
    ctx: ApiContext, bucket: str, key: str, start_s: int, end_s: int
) -> ObjectInfo:
    """PostVodPlaylist's work, shared with the console: `<channel>/<name>.m3u8` naming the
    segments of [start_s, end_s], stored next to them."""
    channel = _vod_channel(key)
    storage = ctx.storages.get(bucket)
    if storage is None:
        raise NoSuchBucket("the bucket does not exist")
    segments = await segments_in(ctx, bucket, channel, start_s, end_s)
    body = playlist_text(segments, _uri_in_channel(ctx, bucket, channel)).encode()
    return await storage.put(key, body, content_type_for(key))


async def post_vod_playlist(call: Call) -> web.StreamResponse:
    key = call.target.key
    _vod_channel(key)  # the name's errors come before the times'
    start_s = _unix_s(call, "startTime")
    end_s = _unix_s(call, "endTime")
    info = await store_vod_playlist(call.ctx, call.bucket, key, start_s, end_s)
    return empty_response(200, headers={"ETag": f'"{info.etag}"'})
