"""LiveChannel operations (OSS API reference, LiveChannel: PutLiveChannelStatus through
DeleteLiveChannel)."""

from __future__ import annotations

import json
import logging

from aiohttp import web

from livechannel.api import xml
from livechannel.api.body import read_limited
from livechannel.api.call import Call
from livechannel.api.channel_config import check_channel_name, parse_channel_config, parse_status
from livechannel.api.context import ApiContext
from livechannel.api.dates import iso8601_ms
from livechannel.api.responses import empty_response, xml_response
from livechannel.errors import InvalidArgument, NoSuchLiveChannel
from livechannel.store.base import Channel, ChannelConfig, ChannelStatus

log = logging.getLogger("livechannel.api")

HISTORY_LIMIT = 10  # OSS API reference, GetLiveChannelHistory: at most the 10 most recent pushes
DEFAULT_MAX_KEYS = 100  # OSS API reference, ListLiveChannel: max-keys default
MAX_MAX_KEYS = 1000  # OSS API reference, ListLiveChannel: max-keys may not exceed 1000
MAX_NUMBER_DIGITS = 9  # longer is out of range anyway; int() raises ValueError past 4300 digits

_VIDEO_FIELDS = (("Width", "width"), ("Height", "height"), ("FrameRate", "frame_rate"),
                 ("Bandwidth", "bandwidth"))  # fmt: skip
_AUDIO_FIELDS = (("Bandwidth", "bandwidth"), ("SampleRate", "sample_rate"))


async def _channel(call: Call) -> Channel:
    channel = await call.ctx.store.get_channel(call.bucket, call.target.key)
    if channel is None:
        raise NoSuchLiveChannel("the live channel does not exist")
    return channel


def parse_max_keys(text: str | None) -> int:
    if text is None or text == "":
        return DEFAULT_MAX_KEYS
    if not (text.isascii() and text.isdigit() and len(text) <= MAX_NUMBER_DIGITS) or not (
        1 <= int(text) <= MAX_MAX_KEYS
    ):
        raise InvalidArgument(
            "max-keys must be an integer in [1, 1000]", ArgumentName="max-keys", ArgumentValue=text
        )
    return int(text)


def _urls(call: Call, channel: Channel) -> list[xml.XmlNode]:
    urls = call.ctx.urls
    return [
        ("PublishUrls", [("Url", urls.publish_url(call.bucket, channel.name))]),
        (
            "PlayUrls",
            [("Url", urls.play_url(call.bucket, channel.name, channel.config.playlist_name))],
        ),
    ]


async def create_channel(
    ctx: ApiContext, bucket: str, name: str, config: ChannelConfig, now_ms: int
) -> Channel:
    """PutLiveChannel's work, shared with the browser console: check, then create or replace."""
    check_channel_name(name)
    dest = config.snapshot.dest_bucket if config.snapshot else ""
    if dest and dest not in ctx.storages:  # snapshots could never be stored
        raise InvalidArgument(
            "Snapshot DestBucket is not a bucket of this service",
            ArgumentName="DestBucket",
            ArgumentValue=dest,
        )
    # Raises ChannelStillLive while a client pushes (only the status may change then: OSS API
    # reference, PutLiveChannelStatus).
    return await ctx.store.put_channel(bucket, name, config, now_ms)


async def set_channel_status(
    ctx: ApiContext, bucket: str, name: str, status: ChannelStatus, now_ms: int
) -> None:
    """PutLiveChannelStatus's work, shared with the browser console."""
    await ctx.store.set_channel_status(bucket, name, status, now_ms)
    if status == ChannelStatus.DISABLED:
        # The store's kick flag reaches other processes; this reaches our own at once.
        ctx.on_channel_disabled(bucket, name)


async def delete_channel(ctx: ApiContext, bucket: str, name: str) -> None:
    """DeleteLiveChannel's work: raises NoSuchLiveChannel, or ChannelStillLive while pushing;
    never touches objects."""
    await ctx.store.delete_channel(bucket, name)


async def put_live_channel(call: Call) -> web.StreamResponse:
    check_channel_name(call.target.key)
    body = await read_limited(
        call.request, call.ctx.max_xml_body_bytes, call.ctx.http_body_timeout_s
    )
    config = parse_channel_config(body)
    channel = await create_channel(call.ctx, call.bucket, call.target.key, config, call.now_ms())
    return xml_response(("CreateLiveChannelResult", _urls(call, channel)))


async def put_live_channel_status(call: Call) -> web.StreamResponse:
    status = parse_status(call.target.param("status") or "")
    await set_channel_status(call.ctx, call.bucket, call.target.key, status, call.now_ms())
    return empty_response(200)


async def get_live_channel_info(call: Call) -> web.StreamResponse:
    config = (await _channel(call)).config
    return xml_response(
        (
            "LiveChannelConfiguration",
            [
                ("Description", config.description),
                ("Status", config.status.value),
                (
                    "Target",
                    [
                        ("Type", "HLS"),
                        ("FragDuration", config.frag_duration_s),
                        ("FragCount", config.frag_count),
                        ("PlaylistName", config.playlist_name),
                        # Our extension, only where the channel sets it (docs/api.md).
                        *(
                            [("SegmentFormat", config.segment_format.value)]
                            if config.segment_format
                            else []
                        ),
                    ],
                ),
            ],
        )
    )


def _as_int(value: object) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float) and value != value:  # NaN
        return None
    return round(value)


def _stream(data: object, tag: str, fields: tuple[tuple[str, str], ...]) -> xml.XmlNode | None:
    """A Video/Audio container with every child (OSS API reference, GetLiveChannelStat), or
    None: never a partial one."""
    if not isinstance(data, dict):
        return None
    children: list[xml.XmlNode] = []
    for element, name in fields:
        number = _as_int(data.get(name))
        if number is None:
            return None
        children.append((element, number))
    codec = data.get("codec")
    if not isinstance(codec, str) or not codec:
        return None
    children.append(("Codec", codec))
    return (tag, children)


def stat_streams(stats_json: str) -> list[xml.XmlNode]:
    """Video and Audio from a push's `stats_json`; unreadable figures are simply left out."""
    try:
        stats = json.loads(stats_json) if stats_json else {}
    except ValueError:
        log.warning("unreadable stats_json ignored")
        return []
    if not isinstance(stats, dict):
        return []
    nodes = [
        _stream(stats.get("video"), "Video", _VIDEO_FIELDS),
        _stream(stats.get("audio"), "Audio", _AUDIO_FIELDS),
    ]
    return [node for node in nodes if node is not None]


async def get_live_channel_stat(call: Call) -> web.StreamResponse:
    channel = await _channel(call)
    if channel.config.status == ChannelStatus.DISABLED:
        return xml_response(("LiveChannelStat", [("Status", "Disabled")]))
    push = await call.ctx.store.live_push(call.bucket, channel.name)
    if push is None:
        return xml_response(("LiveChannelStat", [("Status", "Idle")]))
    children: list[xml.XmlNode] = [
        ("Status", "Live"),
        ("ConnectedTime", iso8601_ms(push.start_ms)),
        ("RemoteAddr", push.remote_addr),
    ]
    children.extend(stat_streams(push.stats_json))
    return xml_response(("LiveChannelStat", children))


async def get_live_channel_history(call: Call) -> web.StreamResponse:
    channel = await _channel(call)
    pushes = await call.ctx.store.history(call.bucket, channel.name, HISTORY_LIMIT)
    # The store answers most recent first; the example of OSS API reference,
    # GetLiveChannelHistory lists them oldest first.
    records: list[xml.XmlNode] = [
        (
            "LiveRecord",
            [
                ("StartTime", iso8601_ms(push.start_ms)),
                ("EndTime", iso8601_ms(push.end_ms if push.end_ms is not None else push.start_ms)),
                ("RemoteAddr", push.remote_addr),
            ],
        )
        for push in reversed(pushes)
    ]
    return xml_response(("LiveChannelHistory", records))


async def list_live_channel(call: Call) -> web.StreamResponse:
    prefix = call.target.param("prefix") or ""
    marker = call.target.param("marker") or ""
    max_keys = parse_max_keys(call.target.param("max-keys"))
    found = await call.ctx.store.list_channels(call.bucket, prefix, marker, max_keys + 1)
    page = found[:max_keys]
    truncated = len(found) > max_keys
    # OSS API reference, ListLiveChannel: marker is exclusive, so the last name returned is
    # where the next page starts.
    children: list[xml.XmlNode] = [
        ("Prefix", prefix),
        ("Marker", marker),
        ("MaxKeys", max_keys),
        ("IsTruncated", truncated),
        ("NextMarker", page[-1].name if truncated else ""),
    ]
    for channel in page:
        children.append(
            (
                "LiveChannel",
                [
                    ("Name", channel.name),
                    ("Description", channel.config.description),
                    ("Status", channel.config.status.value),
                    ("LastModified", iso8601_ms(channel.last_modified_ms)),
                    *_urls(call, channel),
                ],
            )
        )
    return xml_response(("ListLiveChannelResult", children))


async def delete_live_channel(call: Call) -> web.StreamResponse:
    await delete_channel(call.ctx, call.bucket, call.target.key)
    return empty_response(204)
