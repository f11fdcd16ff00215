"""GetObject, HeadObject, DeleteObject (OSS API reference): what players and clean-up need.

Bodies stream from `storage.get` in the store's chunks; nothing is buffered except a
playlist being signed (`x-oss-process=hls/sign`, bounded). Caching: a playlist changes with
every segment, so `.m3u8` gets `max-age=1`; a `.ts` or `.m4s` segment's (and an fMP4 init
section's) name is its start time and its bytes never change, so it may be cached for a
year. A signed request's `response-*` parameters override the answer's headers (OSS API
reference, GetObject); an anonymous one's are ignored.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from livechannel.api.addressing import check_object_name
from livechannel.api.call import Call
from livechannel.api.dates import http_date
from livechannel.api.hls_sign import sign_playlist
from livechannel.api.live_objects import answer_live
from livechannel.api.middleware import StreamAborted
from livechannel.api.ranges import ByteRange, Precondition, evaluate_preconditions, parse_range
from livechannel.api.responses import empty_response
from livechannel.errors import (
    InvalidArgument,
    InvalidObjectName,
    NoSuchKey,
    ServiceUnavailable,
)
from livechannel.storage.base import ObjectInfo, ObjectStorage

log = logging.getLogger("livechannel.api")

# A playlist is replaced after every segment (OSS API reference, PutLiveChannel).
PLAYLIST_CACHE_CONTROL = "max-age=1"
SEGMENT_CACHE_CONTROL = "max-age=31536000, immutable"  # a segment's bytes never change
SIGNED_PLAYLIST_CACHE_CONTROL = "no-cache"  # carries expiring signatures
RANGE_ATTEMPTS = 3  # a playlist replaced between head and open is retried; then 503
# Response bodies go out in pieces this big; each must be taken by the client within
# http_send_stall_timeout_s, which makes the floor rate piece / stall (~3 KiB/s at 20 s).
SEND_PIECE_BYTES = 64 * 1024
MAX_SIGNED_PLAYLIST_BYTES = 8 * 1024 * 1024  # a day of 2 s segments is ~1.5 MB of playlist
HEADER_SIGNED_EXPIRES_S = 3600  # hls/sign of a header-signed GET: oss2's sign_url default
HLS_SIGN = "hls/sign"  # the only x-oss-process we implement

RESPONSE_OVERRIDES = {  # OSS API reference, GetObject request parameters -> the header each sets
    "response-content-type": "Content-Type",
    "response-content-language": "Content-Language",
    "response-expires": "Expires",
    "response-cache-control": "Cache-Control",
    "response-content-disposition": "Content-Disposition",
    "response-content-encoding": "Content-Encoding",
}


def _cache_control(key: str) -> str | None:
    if key.endswith(".m3u8"):
        return PLAYLIST_CACHE_CONTROL
    if key.endswith((".ts", ".m4s", ".mp4")):  # fMP4 init sections are never rewritten either
        return SEGMENT_CACHE_CONTROL
    return None


def object_headers(call: Call, info: ObjectInfo) -> dict[str, str]:
    headers = {
        "Content-Type": info.content_type,
        "ETag": f'"{info.etag}"',
        "Last-Modified": http_date(info.last_modified_ms),
        "Accept-Ranges": "bytes",
        "x-oss-object-type": "Normal",
        "x-oss-storage-class": "Standard",
    }
    cache_control = _cache_control(info.key)
    if cache_control is not None:
        headers["Cache-Control"] = cache_control
    return headers


def _apply_overrides(call: Call, headers: dict[str, str]) -> None:
    if call.identity.anonymous:
        return
    for param, header in RESPONSE_OVERRIDES.items():
        value = call.target.param(param)
        if value is None:
            continue
        if any((ord(c) < 0x20 and c != "\t") or ord(c) == 0x7F for c in value):
            raise InvalidArgument(
                f"{param} contains a control character", ArgumentName=param, ArgumentValue=""
            )
        headers[header] = value


async def _close(chunks: AsyncIterator[bytes]) -> None:
    aclose = getattr(chunks, "aclose", None)
    if aclose is not None:
        await aclose()


def _preconditions(call: Call, info: ObjectInfo) -> Precondition:
    h = call.request.headers
    return evaluate_preconditions(
        h.get("If-Match"),
        h.get("If-None-Match"),
        h.get("If-Modified-Since"),
        h.get("If-Unmodified-Since"),
        info.etag,
        info.last_modified_ms,
    )


async def _head(storage: ObjectStorage, key: str) -> ObjectInfo:
    try:
        info = await storage.head(key)
    except InvalidObjectName:
        info = None  # a name our store cannot hold cannot exist in it
    if info is None:
        raise NoSuchKey("The specified key does not exist.", Key=key)
    return info


async def _open(
    storage: ObjectStorage, key: str, start: int = 0, end: int | None = None
) -> tuple[ObjectInfo, AsyncIterator[bytes]]:
    try:
        return await storage.get(key, start, end)
    except InvalidObjectName:
        raise NoSuchKey("The specified key does not exist.", Key=key) from None


def _not_modified(info: ObjectInfo) -> web.Response:
    return web.Response(
        status=304,
        headers={"ETag": f'"{info.etag}"', "Last-Modified": http_date(info.last_modified_ms)},
    )


async def _open_range(
    call: Call, key: str, header: str
) -> tuple[ObjectInfo, AsyncIterator[bytes], ByteRange | None] | web.Response:
    """Resolve the range against the object's size, then open exactly that object."""
    storage = call.storage
    for _ in range(RANGE_ATTEMPTS):
        head = await _head(storage, key)
        if _preconditions(call, head) is Precondition.NOT_MODIFIED:
            return _not_modified(head)
        byte_range = parse_range(header, head.size)
        start, end = (byte_range.start, byte_range.end) if byte_range else (0, None)
        info, chunks = await _open(storage, key, start, end)
        if info.etag == head.etag and info.size == head.size:
            return info, chunks, byte_range
        await _close(chunks)  # replaced in between (a live playlist): resolve again
    raise ServiceUnavailable("the object changed while it was being opened; retry")


async def get_object(call: Call) -> web.StreamResponse:
    key = call.target.key
    check_object_name(key)
    process = call.target.param("x-oss-process")
    live = await answer_live(call, key, process)  # LL-HLS pushes of this process
    if live is not None:
        return live
    if process is not None:
        return await _processed(call, key, process)
    if call.request.method == "HEAD":
        info = await _head(call.storage, key)
        if _preconditions(call, info) is Precondition.NOT_MODIFIED:
            return _not_modified(info)
        headers = object_headers(call, info)
        _apply_overrides(call, headers)
        headers["Content-Length"] = str(info.size)
        return web.Response(status=200, headers=headers)

    range_header = call.request.headers.get("Range")
    byte_range: ByteRange | None = None
    if range_header is None:
        info, chunks = await _open(call.storage, key)
        try:
            precondition = _preconditions(call, info)
        except BaseException:
            await _close(chunks)
            raise
        if precondition is Precondition.NOT_MODIFIED:
            await _close(chunks)
            return _not_modified(info)
    else:
        opened = await _open_range(call, key, range_header)
        if isinstance(opened, web.Response):
            return opened
        info, chunks, byte_range = opened
    return await _stream(call, info, chunks, byte_range)


async def _stream(
    call: Call, info: ObjectInfo, chunks: AsyncIterator[bytes], byte_range: ByteRange | None
) -> web.StreamResponse:
    try:
        headers = object_headers(call, info)
        _apply_overrides(call, headers)
        if byte_range is not None:
            headers["Content-Range"] = byte_range.content_range(info.size)
            length = byte_range.end - byte_range.start
        else:
            length = info.size
        response = web.StreamResponse(status=206 if byte_range else 200, headers=headers)
        response.content_length = length
        await response.prepare(call.request)
    except BaseException:
        await _close(chunks)
        raise
    stall_s = call.ctx.http_send_stall_timeout_s
    try:
        async for chunk in chunks:
            view = memoryview(chunk)
            for start in range(0, len(view), SEND_PIECE_BYTES):
                async with asyncio.timeout(stall_s):
                    await response.write(view[start : start + SEND_PIECE_BYTES])
        await response.write_eof()
    except TimeoutError:
        # The client stopped reading: cut it off, freeing its request slot and connection.
        log.info(
            "client %s took nothing of %s for %g s: connection closed",
            call.request.remote,
            info.key,
            stall_s,
        )
        if call.request.transport is not None:
            call.request.transport.abort()
    except ConnectionError:
        # The player went away (seeking, closing the tab): routine, not an error. aiohttp
        # sees the dead transport when it finishes the response and drops the connection.
        log.debug("client disconnected during %s", info.key)
    except Exception as e:
        # Our side failed: the connection must close, or a short body would desync it.
        raise StreamAborted(f"object body failed after the headers were sent: {e!r}") from e
    finally:
        await _close(chunks)
    return response


async def _read_all(chunks: AsyncIterator[bytes], limit: int) -> bytes:
    parts: list[bytes] = []
    size = 0
    async for chunk in chunks:
        size += len(chunk)
        if size > limit:
            raise InvalidArgument("the playlist is too large to sign")
        parts.append(chunk)
    return b"".join(parts)


async def _processed(call: Call, key: str, process: str) -> web.StreamResponse:
    """`x-oss-process=hls/sign` on an .m3u8 (spec: Objects needed for playback)."""
    if process != HLS_SIGN:
        raise InvalidArgument(
            "only x-oss-process=hls/sign is supported", ArgumentName="x-oss-process",
            ArgumentValue=process,
        )  # fmt: skip
    if not key.endswith(".m3u8"):
        raise InvalidArgument(
            "hls/sign applies to .m3u8 playlists only", ArgumentName="x-oss-process"
        )
    info, chunks = await _open(call.storage, key)
    try:
        body = await _read_all(chunks, MAX_SIGNED_PLAYLIST_BYTES)
    finally:
        await _close(chunks)
    identity = call.identity
    if identity.access_key_id is not None:
        # A URL-signed GET lends its Expires; a header-signed one has none, so we pick one.
        expires_s = identity.url_expires_s or call.now_ms() // 1000 + HEADER_SIGNED_EXPIRES_S
        secret = call.ctx.credentials[identity.access_key_id]
        text = body.decode("utf-8", errors="surrogateescape")
        signed = sign_playlist(
            text,
            key,
            call.bucket,
            call.target.bucket_path,
            identity.access_key_id,
            secret,
            expires_s,
        )
        body = signed.encode("utf-8", errors="surrogateescape")
    # Anonymous (public-read bucket): segments need no signature; the playlist goes as it is.
    headers = object_headers(call, info)
    del headers["ETag"]  # the body is derived, not the stored object
    headers["Cache-Control"] = SIGNED_PLAYLIST_CACHE_CONTROL
    _apply_overrides(call, headers)
    if call.request.method == "HEAD":
        headers["Content-Length"] = str(len(body))
        return web.Response(status=200, headers=headers)
    return web.Response(status=200, body=body, headers=headers)


async def get_object_meta(call: Call) -> web.StreamResponse:
    """GetObjectMeta (`?objectMeta`): ETag, size and time only; `oss2.object_exists` uses it."""
    key = call.target.key
    check_object_name(key)
    info = await _head(call.storage, key)
    headers = {
        "ETag": f'"{info.etag}"',
        "Last-Modified": http_date(info.last_modified_ms),
        # A HEAD answer's Content-Length describes the object; a GET's must describe its
        # (empty) body, so the size travels in x-oss-object-size there too.
        "x-oss-object-size": str(info.size),
        "Content-Length": str(info.size) if call.request.method == "HEAD" else "0",
    }
    return web.Response(status=200, headers=headers)


async def delete_object(call: Call) -> web.StreamResponse:
    key = call.target.key
    check_object_name(key)
    # A name our store cannot hold cannot exist; deleting a missing object is 204 (OSS API
    # reference, DeleteObject).
    with contextlib.suppress(InvalidObjectName):
        await call.storage.delete(key)
    return empty_response(204)
