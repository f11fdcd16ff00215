"""Which operation a request is: method + bucket/key + sub-resources -> handler and access.

Anything we do not implement is an OSS error, never a crash: an OSS operation we do not offer
(PutObject, multipart, bucket CORS, ...) is 501 NotImplemented; a method that makes no sense
for the resource is 405 MethodNotAllowed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from livechannel.api import bucket, channels, cors, objects, vod
from livechannel.api.addressing import Target
from livechannel.api.auth import Access
from livechannel.api.call import Call
from livechannel.auth.signing import SUB_RESOURCES
from livechannel.errors import MethodNotAllowed, NotImplementedOss

Handler = Callable[[Call], Awaitable[web.StreamResponse]]

# Sub-resources that modify a GetObject answer rather than name another resource.
_OBJECT_MODIFIERS = frozenset(
    {
        "response-content-type", "response-content-language", "response-expires",
        "response-cache-control", "response-content-disposition", "response-content-encoding",
        "x-oss-process", "security-token",
    }
)  # fmt: skip
# Sub-resources that may accompany `live` and `vod` (`?live&comp=stat`, `?vod&startTime=..`).
_LIVE_FAMILY = frozenset({"live", "status", "comp"})
_VOD_FAMILY = frozenset({"vod", "startTime", "endTime"})


@dataclass(frozen=True, slots=True)
class Operation:
    name: str
    handler: Handler
    access: Access


def _not_allowed(method: str) -> MethodNotAllowed:
    return MethodNotAllowed(
        "The specified method is not allowed against this resource.", Method=method
    )


def _not_implemented(what: str) -> NotImplementedOss:
    return NotImplementedOss(f"{what} is not implemented by this service")


def _channel_operation(method: str, target: Target) -> Operation:
    if method == "PUT":
        if target.has("status"):
            return Operation(
                "PutLiveChannelStatus", channels.put_live_channel_status, Access.CHANNEL
            )
        return Operation("PutLiveChannel", channels.put_live_channel, Access.CHANNEL)
    if method == "GET":
        comp = target.param("comp")
        if comp == "stat":
            return Operation("GetLiveChannelStat", channels.get_live_channel_stat, Access.CHANNEL)
        if comp == "history":
            return Operation(
                "GetLiveChannelHistory", channels.get_live_channel_history, Access.CHANNEL
            )
        if comp is None:
            return Operation("GetLiveChannelInfo", channels.get_live_channel_info, Access.CHANNEL)
        raise _not_implemented(f"comp={comp}")
    if method == "DELETE":
        return Operation("DeleteLiveChannel", channels.delete_live_channel, Access.CHANNEL)
    raise _not_allowed(method)


def _bucket_operation(method: str, subs: set[str]) -> Operation:
    if subs == {"acl"}:
        if method == "GET":
            return Operation("GetBucketAcl", bucket.get_bucket_acl, Access.OWNER)
        if method == "PUT":
            return Operation("PutBucketAcl", bucket.put_bucket_acl, Access.OWNER)
        raise _not_allowed(method)
    if subs == {"live"}:
        if method == "GET":
            return Operation("ListLiveChannel", channels.list_live_channel, Access.CHANNEL)
        raise _not_allowed(method)
    if subs == {"delete"}:
        if method == "POST":
            return Operation("DeleteMultipleObjects", bucket.delete_multiple_objects, Access.WRITE)
        raise _not_allowed(method)
    if subs:
        raise _not_implemented("?" + "&".join(sorted(subs)))
    if method == "GET":
        return Operation("GetBucket", bucket.list_objects, Access.READ)
    if method in ("PUT", "DELETE", "POST"):
        raise _not_implemented(f"{method} on a bucket")
    raise _not_allowed(method)


def _object_operation(method: str, target: Target, subs: set[str]) -> Operation:
    if "live" in subs and subs <= _LIVE_FAMILY:
        return _channel_operation(method, target)
    if "vod" in subs and subs <= _VOD_FAMILY:
        if method == "GET":
            return Operation("GetVodPlaylist", vod.get_vod_playlist, Access.CHANNEL)
        if method == "POST":
            return Operation("PostVodPlaylist", vod.post_vod_playlist, Access.CHANNEL)
        raise _not_allowed(method)
    if subs == {"objectMeta"} and method in ("GET", "HEAD"):
        return Operation("GetObjectMeta", objects.get_object_meta, Access.READ)
    if subs - _OBJECT_MODIFIERS:
        raise _not_implemented("?" + "&".join(sorted(subs - _OBJECT_MODIFIERS)))
    if method in ("GET", "HEAD"):
        return Operation(
            "GetObject" if method == "GET" else "HeadObject", objects.get_object, Access.READ
        )
    if method == "DELETE":
        return Operation("DeleteObject", objects.delete_object, Access.WRITE)
    if method in ("PUT", "POST"):
        raise _not_implemented(f"{method} of an object")
    raise _not_allowed(method)


def resolve(method: str, target: Target) -> Operation:
    if method == "OPTIONS":
        return Operation("OptionObject", cors.preflight, Access.PREFLIGHT)
    subs = {name for name, _ in target.query if name in SUB_RESOURCES}
    if target.bucket is None:
        if method == "GET" and not subs - {"security-token"}:
            return Operation("GetService", bucket.get_service, Access.OWNER)
        raise _not_allowed(method)
    subs.discard("security-token")
    if not target.key:
        return _bucket_operation(method, subs)
    return _object_operation(method, target, subs)
