"""Reading request bodies with a hard size limit, before anything parses them."""

from __future__ import annotations

import asyncio
import base64
import hashlib

from aiohttp import web

from livechannel.auth.signing_v4 import UNSIGNED_PAYLOAD
from livechannel.errors import InvalidArgument, MalformedXML, OssError, RequestTimeout

READ_CHUNK_BYTES = 16 * 1024  # small reads: we stop as soon as the limit is crossed


class InvalidDigest(OssError):
    """OSS API reference, DeleteMultipleObjects: the body does not match its Content-MD5."""

    status, code = 400, "InvalidDigest"


async def read_limited(request: web.Request, limit_bytes: int, timeout_s: float) -> bytes:
    """The whole body, or MalformedXML once it exceeds `limit_bytes`, or RequestTimeout when
    it has not arrived whole within `timeout_s` (a trickled body would hold a request slot).

    OSS API reference, DeleteMultipleObjects: an oversized XML body is MalformedXML (not
    EntityTooLarge), and `oss2` maps that code to its MalformedXml exception; so do we for
    every XML body.
    """
    declared = request.content_length
    if declared is not None and declared > limit_bytes:
        raise MalformedXML(f"the XML body is larger than {limit_bytes} bytes")
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(timeout_s):
            while chunk := await request.content.read(READ_CHUNK_BYTES):
                size += len(chunk)
                if size > limit_bytes:
                    raise MalformedXML(f"the XML body is larger than {limit_bytes} bytes")
                chunks.append(chunk)
    except TimeoutError:
        raise RequestTimeout(f"the request body did not arrive within {timeout_s:g} s") from None
    body = b"".join(chunks)
    check_content_sha256(request, body)
    return body


def check_content_sha256(request: web.Request, body: bytes) -> None:
    """A V4-signed request may sign its body's SHA-256 (x-oss-content-sha256) instead of
    UNSIGNED-PAYLOAD; the signature then covers the body only if the hash is the body's."""
    provided = request.headers.get("x-oss-content-sha256")
    if provided is None or provided.strip() == UNSIGNED_PAYLOAD:
        return
    if provided.strip().lower() != hashlib.sha256(body).hexdigest():
        raise InvalidArgument(
            "x-oss-content-sha256 does not match the body received",
            ArgumentName="x-oss-content-sha256", ArgumentValue=provided,
        )  # fmt: skip


def check_content_md5(request: web.Request, body: bytes, *, required: bool) -> None:
    """Content-MD5 is base64 of the binary MD5.

    OSS API reference, signature in the header, "Content-MD5的计算方法".
    """
    provided = request.headers.get("Content-MD5")
    if provided is None:
        if required:
            raise InvalidArgument("Content-MD5 is required for this request")
        return
    expected = base64.b64encode(hashlib.md5(body).digest()).decode("ascii")
    if provided.strip() != expected:
        raise InvalidDigest("the Content-MD5 you specified did not match what we received")
