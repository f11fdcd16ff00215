"""What the console changes: create, enable/disable, delete a channel; store a VOD clip.

Each goes through the same functions as the OSS handlers (livechannel.api.channels, .vod),
and a new channel's form becomes the `<LiveChannelConfiguration>` document an SDK would send,
read by the API's own parser: the console cannot create a channel the API would refuse.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

from aiohttp import web

from livechannel.api.channel_config import check_channel_name, parse_channel_config, parse_status
from livechannel.api.channels import create_channel, delete_channel, set_channel_status
from livechannel.api.vod import store_vod_playlist
from livechannel.console import figures
from livechannel.console.routes import Console, Reply, json_body
from livechannel.console.session import Session
from livechannel.console.views import PREVIEW_EXPIRY_S, bucket_of, object_url
from livechannel.errors import InvalidArgument, OssError
from livechannel.store.base import ChannelStatus


class ChannelExists(OssError):
    """The console creates; replacing a channel's configuration is the API's PutLiveChannel."""

    status, code = 409, "LiveChannelAlreadyExists"


def _text(body: dict[str, Any], name: str, *, required: bool = True) -> str:
    value = body.get(name)
    if value is None or value == "":
        if required:
            raise InvalidArgument(f"{name} is required", ArgumentName=name)
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise InvalidArgument(f"{name} must be a string or a number", ArgumentName=name)
    return str(value)


def config_document(body: dict[str, Any]) -> bytes:
    """The form as PutLiveChannel's body (OSS API reference, LiveChannel, PutLiveChannel)."""
    root = ET.Element("LiveChannelConfiguration")
    ET.SubElement(root, "Description").text = _text(body, "description", required=False)
    ET.SubElement(root, "Status").text = ChannelStatus.ENABLED.value
    target = ET.SubElement(root, "Target")
    ET.SubElement(target, "Type").text = "HLS"
    for field, element in (("frag_duration", "FragDuration"), ("frag_count", "FragCount"),
                           ("playlist_name", "PlaylistName")):  # fmt: skip
        value = _text(body, field, required=False)
        if value:
            ET.SubElement(target, element).text = value
    interval = _text(body, "snapshot_interval", required=False)
    if interval:
        snapshot = ET.SubElement(root, "Snapshot")
        ET.SubElement(snapshot, "RoleName").text = ""
        ET.SubElement(snapshot, "DestBucket").text = ""  # the channel's own bucket
        ET.SubElement(snapshot, "NotifyTopic").text = ""
        ET.SubElement(snapshot, "Interval").text = interval
    document: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return document


async def create(request: web.Request, console: Console, session: Session) -> Reply:
    body = await json_body(request, console)
    bucket = bucket_of(console, _text(body, "bucket"))
    name = _text(body, "name")
    check_channel_name(name)
    config = parse_channel_config(config_document(body))
    api = console.api
    if await api.store.get_channel(bucket, name) is not None:
        raise ChannelExists(f"a channel named {name!r} exists already in {bucket}")
    channel = await create_channel(api, bucket, name, config, api.now_ms())
    return {"bucket": bucket, "channel": figures.row(channel, None, api.now_ms())}


async def set_status(request: web.Request, console: Console, session: Session) -> Reply:
    body = await json_body(request, console)
    bucket = bucket_of(console, _text(body, "bucket"))
    status = parse_status(_text(body, "status"))
    name = _text(body, "name")
    await set_channel_status(console.api, bucket, name, status, console.api.now_ms())
    return {"bucket": bucket, "name": name, "status": status.value}


async def delete(request: web.Request, console: Console, session: Session) -> Reply:
    body = await json_body(request, console)
    bucket = bucket_of(console, _text(body, "bucket"))
    name = _text(body, "name")
    await delete_channel(console.api, bucket, name)  # ChannelStillLive while pushing
    return {"bucket": bucket, "name": name, "deleted": True}


async def vod(request: web.Request, console: Console, session: Session) -> Reply:
    """A clip: `<channel>/<playlist_name>` naming the segments of [start_s, end_s], stored as
    PostVodPlaylist stores it, with a signed URL to play it (hls/sign)."""
    body = await json_body(request, console)
    bucket = bucket_of(console, _text(body, "bucket"))
    name = _text(body, "name")
    playlist = _text(body, "playlist_name")
    times = []
    for field in ("start_s", "end_s"):
        text = _text(body, field)
        if not (text.isascii() and text.isdigit() and len(text) <= 12):
            raise InvalidArgument(f"{field} must be a Unix time in seconds", ArgumentName=field)
        times.append(int(text))
    key = f"{name}/{playlist}"
    check_channel_name(name)
    await store_vod_playlist(console.api, bucket, key, times[0], times[1])
    now = console.api.now_ms()
    url = object_url(console, session, bucket, key, PREVIEW_EXPIRY_S, now, "hls/sign")
    return {"bucket": bucket, "key": key, "url": url}
