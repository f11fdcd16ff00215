"""CORS for browser players (OSS API reference, CORS, OptionObject).

OSS needs a PutBucketCORS rule first; we have no CORS configuration API, so every bucket
behaves as if it had the one rule a web player needs: any origin may GET and HEAD. Reads of a
private bucket still need a signed URL; CORS only lets the browser see the answer. The
preflight never needs a signature (browsers send none with it). Other methods are refused,
so a web page cannot make a visitor's browser delete objects or channels.
"""

from __future__ import annotations

from aiohttp import web

from livechannel.api.call import Call
from livechannel.api.responses import empty_response
from livechannel.errors import OssError

ALLOWED_METHODS = ("GET", "HEAD")
# Headers a player needs to read: seeking (Content-Range), caching (ETag, Last-Modified),
# and the request id for bug reports.
EXPOSED_HEADERS = "ETag, Content-Length, Content-Range, Last-Modified, x-oss-request-id"
PREFLIGHT_MAX_AGE_S = 600  # browsers cap this anyway (Chrome: 2 h); 10 min spares round trips


class AccessForbidden(OssError):
    """OSS API reference, OptionObject: a preflight the CORS rules do not allow."""

    status, code = 403, "AccessForbidden"


def add_cors_headers(request: web.BaseRequest, response: web.StreamResponse) -> None:
    """On actual (non-preflight) responses: let any origin read GET/HEAD answers."""
    if "Origin" in request.headers and request.method in ALLOWED_METHODS:
        response.headers["Access-Control-Allow-Origin"] = "*"
        response.headers["Access-Control-Expose-Headers"] = EXPOSED_HEADERS


async def preflight(call: Call) -> web.StreamResponse:
    headers = call.request.headers
    origin = headers.get("Origin")
    method = headers.get("Access-Control-Request-Method")
    if not origin or not method:
        raise AccessForbidden("CORSResponse: Origin and Access-Control-Request-Method required")
    if method not in ALLOWED_METHODS:
        raise AccessForbidden("CORSResponse: This CORS request is not allowed.")
    response = empty_response(200)
    response.headers["Access-Control-Allow-Origin"] = "*"
    response.headers["Access-Control-Allow-Methods"] = ", ".join(ALLOWED_METHODS)
    requested = headers.get("Access-Control-Request-Headers")
    if requested:
        # Any request header is fine for a read (Range, If-None-Match, ...): echo them back.
        response.headers["Access-Control-Allow-Headers"] = requested
    response.headers["Access-Control-Expose-Headers"] = EXPOSED_HEADERS
    response.headers["Access-Control-Max-Age"] = str(PREFLIGHT_MAX_AGE_S)
    return response
