"""GetObject for what an LL-HLS push of this process holds in memory (hls/low_latency.py):
its playlist with parts (blocking reloads and delta updates, RFC 8216bis 6.2.5), its parts
(preload hints block until the part exists), and its init section and closed segments until
storage has them. A push another worker or node owns is that one's to answer (api/
owners.py); anything else is storage's.

Query parameters (RFC 8216bis 6.2.5.1): `_HLS_msn=<M>` [`&_HLS_part=<P>`] holds the answer
until the playlist has segment M (part P), 400 InvalidArgument when that is too far ahead,
503 ServiceUnavailable after three target durations; `_HLS_skip=YES` (or v2) asks for a
delta update. They are not signed sub-resources, so a signed playlist URL stays valid with
them appended (what hls.js does).
"""

from __future__ import annotations

from aiohttp import web

from livechannel.api.call import Call
from livechannel.api.hls_sign import sign_playlist
from livechannel.errors import InvalidArgument, NoSuchKey, ServiceUnavailable
from livechannel.hls.live_endpoint import LiveEndpoint
from livechannel.hls.low_latency import BadReload

MAX_QUERY_NUMBER_DIGITS = 12  # a sequence number of a live stream never needs more
HEADER_SIGNED_EXPIRES_S = 3600  # hls/sign of a header-signed GET: oss2's sign_url default
PLAYLIST_HEADERS = {"Content-Type": "application/vnd.apple.mpegurl", "Cache-Control": "no-cache"}
MEDIA_HEADERS = {"Content-Type": "video/mp4", "Cache-Control": "max-age=31536000, immutable"}


def _number(call: Call, name: str) -> int | None:
    text = call.target.param(name)
    if text is None:
        return None
    if not (text.isascii() and text.isdigit()) or len(text) > MAX_QUERY_NUMBER_DIGITS:
        raise InvalidArgument(f"{name} must be a whole number", ArgumentName=name,
                              ArgumentValue=text)  # fmt: skip
    return int(text)


async def answer_live(call: Call, key: str, process: str | None) -> web.StreamResponse | None:
    """The response from memory (or from the worker or node that owns the push: api/
    owners.py), or None when storage should answer."""
    registry = call.ctx.low_latency
    live = registry.find(call.bucket, key) if registry is not None and len(registry) else None
    if live is None:
        return await _from_owner(call, key)
    name = key.partition("/")[2]
    if name == live.playlist_name:
        return await _playlist(call, key, live, process)
    if process is not None:
        return None
    state = live.state
    prefix = f"p{state.push_id}-"
    if name.startswith(prefix) and name.endswith(".m4s") and name[len(prefix) : -4].isdigit():
        part = await live.part(int(name[len(prefix) : -4]))
        return _media(call, part.chunks if part is not None else None)
    if state.init is not None and name == state.init[0]:
        return _media(call, [state.init[1]])
    chunks = state.segment_bytes(name)
    return _media(call, chunks) if chunks is not None else None


async def _from_owner(call: Call, key: str) -> web.StreamResponse | None:
    owners = call.ctx.owners
    if owners is None or not owners.wants(call.request, call.bucket, key):
        return None
    owner = await owners.owner(call.bucket, key.partition("/")[0])
    return await owners.answer(call.request, owner) if owner is not None else None


def _media(call: Call, chunks: list[bytes] | None) -> web.StreamResponse:
    if chunks is None:
        raise NoSuchKey("the part is no longer (or not yet) available")
    body = b"".join(chunks)
    if call.request.method == "HEAD":
        return web.Response(status=200, headers={**MEDIA_HEADERS, "Content-Length": str(len(body))})
    return web.Response(status=200, body=body, headers=MEDIA_HEADERS)


async def _playlist(
    call: Call, key: str, live: LiveEndpoint, process: str | None
) -> web.StreamResponse:
    msn, part = _number(call, "_HLS_msn"), _number(call, "_HLS_part")
    skip = (call.target.param("_HLS_skip") or "").upper() in ("YES", "V2")
    try:
        text = await live.playlist(msn, part, skip)
    except BadReload as e:
        raise InvalidArgument(str(e), ArgumentName="_HLS_msn") from None
    if text is None:
        raise ServiceUnavailable("the requested part did not arrive in time")
    identity = call.identity
    if process is not None and identity.access_key_id is not None:
        expires_s = identity.url_expires_s or call.now_ms() // 1000 + HEADER_SIGNED_EXPIRES_S
        secret = call.ctx.credentials[identity.access_key_id]
        text = sign_playlist(text, key, call.bucket, call.target.bucket_path,
                             identity.access_key_id, secret, expires_s)  # fmt: skip
    body = text.encode()
    if call.request.method == "HEAD":
        return web.Response(
            status=200, headers={**PLAYLIST_HEADERS, "Content-Length": str(len(body))}
        )
    return web.Response(status=200, body=body, headers=PLAYLIST_HEADERS)
