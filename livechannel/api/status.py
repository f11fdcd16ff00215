"""`GET /-/status`: live pushes and each channel's last push with their health figures, as JSON.

The operators' machine-readable view (docs/hls.md, Stream health: keyframe interval, frame
rate, bitrate, upload queue, storage errors); the OSS XML API stays as the reference defines
it. The figures come from the metadata store (each push's owner writes them on every heartbeat
and once more when the push ends), so one request sees every worker of a deployment.

Allowed with a valid OSS V1 signature (header or URL) whose resource is `/-/status`; from a
loopback address without one only when the operator turns `status_loopback_unsigned` on (a
monitoring agent on the host): any web page open in a browser on the host could otherwise
read channel names and publisher addresses, and behind a reverse proxy on the same host
every caller looks like loopback. No CORS headers on `/-/` routes (api/middleware.py), so a
page of another origin cannot read the answer even when the option is on. `-` is not a
valid bucket name, so the path cannot shadow a path-style bucket; a virtual-hosted request
(`<bucket>.<domain>/-/status`) is an object read and goes to the OSS handler instead.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Awaitable, Callable

from aiohttp import web

from livechannel.api.addressing import Target, bucket_from_host, parse_query
from livechannel.api.call import identify
from livechannel.api.context import ApiContext
from livechannel.errors import AccessDenied
from livechannel.store.base import MetadataStore, Push

STATUS_PATH = "/-/status"
# The resource a signature covers: bucket "-", key "status" (what oss2's signer produces).
STATUS_BUCKET, STATUS_KEY = "-", "status"
# Channels listed per bucket: bounds one response and its two store queries per channel.
MAX_STATUS_CHANNELS = 1_000
LIST_PAGE = 100  # channels per store query

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def is_loopback(remote: str | None) -> bool:
    """127.0.0.0/8, ::1, and IPv4-mapped loopback (a dual-stack socket's view of 127.0.0.1)."""
    if not remote:
        return False
    try:
        address = ipaddress.ip_address(remote.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


def push_json(push: Push) -> dict[str, object]:
    try:
        stats = json.loads(push.stats_json) if push.stats_json else {}
    except ValueError:
        stats = {}  # written by an older or broken worker: show the record anyway
    return {
        "push_id": push.push_id,
        "bucket": push.bucket,
        "channel": push.channel,
        "remote_addr": push.remote_addr,
        "worker": push.worker,
        "start_ms": push.start_ms,
        "end_ms": push.end_ms,
        "heartbeat_ms": push.heartbeat_ms,
        "stats": stats,
    }


async def collect_status(
    store: MetadataStore, buckets: list[str], now_ms: int
) -> dict[str, object]:
    """Every live push, and per channel its status and last push (live or ended)."""
    live: list[dict[str, object]] = []
    channels: list[dict[str, object]] = []
    truncated = False
    for bucket in sorted(buckets):
        marker, listed = "", 0
        while listed < MAX_STATUS_CHANNELS:
            want = min(LIST_PAGE, MAX_STATUS_CHANNELS - listed)
            page = await store.list_channels(bucket, "", marker, want)
            for channel in page:
                running = await store.live_push(bucket, channel.name)
                last = running
                if last is None:
                    ended = await store.history(bucket, channel.name, 1)
                    last = ended[0] if ended else None
                if running is not None:
                    live.append(push_json(running))
                channels.append(
                    {
                        "bucket": bucket,
                        "channel": channel.name,
                        "status": str(channel.config.status),
                        "live": running is not None,
                        "last_push": None if last is None else push_json(last),
                    }
                )
            listed += len(page)
            if len(page) < want:
                break
            marker = page[-1].name
        else:
            truncated = truncated or bool(await store.list_channels(bucket, "", marker, 1))
    return {"now_ms": now_ms, "live": live, "channels": channels, "truncated": truncated}


def authorize_status(request: web.Request, ctx: ApiContext) -> None:
    """A valid signature passes (a bad one gets its OSS error); an unsigned request only from
    loopback, and only when the operator allowed it."""
    raw_query = request.raw_path.partition("?")[2].split("#", 1)[0]
    target = Target(STATUS_BUCKET, STATUS_KEY, parse_query(raw_query))
    identity = identify(request, ctx, target)
    if identity.anonymous and not (ctx.status_loopback_unsigned and is_loopback(request.remote)):
        raise AccessDenied(f"{STATUS_PATH} needs a signed request")


def status_handler(ctx: ApiContext, fallback: Handler) -> Handler:
    """The route's handler; `fallback` (the OSS catch-all) takes virtual-hosted requests."""

    async def handle(request: web.Request) -> web.StreamResponse:
        if bucket_from_host(request.headers.get("Host", ""), ctx.urls.domain) is not None:
            return await fallback(request)
        authorize_status(request, ctx)
        body = await collect_status(ctx.store, list(ctx.storages), ctx.now_ms())
        return web.json_response(body, headers={"Cache-Control": "no-store"})

    return handle
