"""GetVodPlaylist and PostVodPlaylist (OSS API reference): a finished playlist of a time range.

Segments come from the store's segment index (`segments_between`, by the wall-clock time each
segment started). Segment URIs are relative and resolve from where the playlist is read:

* GET `/<channel>?vod` answers at the bucket's root, so URIs are `<channel>/<ms>.ts`; they
  resolve against the request URL in both addressing styles (the example in OSS API
  reference, GetVodPlaylist shows bare `<ms>.ts`, which would not resolve from that URL).
* POST stores `<channel>/<name>.m3u8` next to the segments, so URIs are `<ms>.ts`.

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
from livechannel.api.responses import empty_response
from livechannel.errors import InvalidArgument, NoSuchLiveChannel
from livechannel.hls.playlist import PlaylistEntry, render, vod_playlist
from livechannel.storage.base import content_type_for
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


async def _segments(call: Call, channel: str) -> list[Segment]:
    start_s = _unix_s(call, "startTime")
    end_s = _unix_s(call, "endTime")
    if end_s <= start_s:
        raise InvalidArgument("endTime must be greater than startTime", ArgumentName="endTime")
    if end_s - start_s > MAX_VOD_SPAN_S:
        raise InvalidArgument("the time span may be at most one day", ArgumentName="endTime")
    if await call.ctx.store.get_channel(call.bucket, channel) is None:
        raise NoSuchLiveChannel("the live channel does not exist")
    segments = await call.ctx.store.segments_between(
        call.bucket, channel, start_s * 1000, end_s * 1000
    )
    if not segments:
        # What real OSS answers for an empty range (spec, "what the SDK expects" 12).
        raise InvalidArgument("no segment was produced in that time range")
    return segments


def playlist_text(segments: list[Segment], uri_of: Callable[[Segment], str]) -> str:
    entries = [
        PlaylistEntry(
            uri=uri_of(s),
            duration_ms=s.duration_ms,
            # A push's first segment starts a new timeline; the playlist's first needs no tag.
            discontinuity=s.discontinuity and i > 0,
        )
        for i, s in enumerate(segments)
    ]
    return render(vod_playlist(entries))


async def get_vod_playlist(call: Call) -> web.StreamResponse:
    segments = await _segments(call, call.target.key)
    # A bucket's public base URL (docs/storage.md, public_base_url) wins.
    public = call.ctx.urls.public_url

    def uri_of(s: Segment) -> str:
        return public(call.bucket, s.key) or quote(s.key, safe="/")

    body = playlist_text(segments, uri_of).encode()
    return web.Response(
        status=200,
        body=body,
        headers={
            "Content-Type": PLAYLIST_CONTENT_TYPE,
            "ETag": f'"{hashlib.md5(body).hexdigest().upper()}"',
        },
    )


async def post_vod_playlist(call: Call) -> web.StreamResponse:
    key = call.target.key
    channel, slash, name = key.partition("/")
    if not slash or not channel:
        raise InvalidArgument("the object must be <channel>/<playlist>.m3u8")
    check_playlist_name(name, "PlaylistName")
    segments = await _segments(call, channel)
    prefix = channel + "/"

    def uri_of(s: Segment) -> str:
        public = call.ctx.urls.public_url(call.bucket, s.key)
        if public is not None:
            return public  # the bucket's public base URL (docs/storage.md, public_base_url)
        inside = s.key[len(prefix) :] if s.key.startswith(prefix) else "../" + s.key
        return quote(inside, safe="/")

    body = playlist_text(segments, uri_of).encode()
    info = await call.storage.put(key, body, content_type_for(key))
    return empty_response(200, headers={"ETag": f'"{info.etag}"'})
