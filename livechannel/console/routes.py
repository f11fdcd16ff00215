"""The console's routes under `/-/console/`: static files, sign-in/out, and the guard every
data route goes through (session cookie; for changes also the CSRF header and the Origin).

Errors are JSON (`{"error": {"code", "message"}}`) with the OSS code the API would give, so
the page can show the reason (e.g. ChannelStillLive on a delete).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from livechannel.api.context import ApiContext
from livechannel.console.session import (
    SIGN_IN_WINDOW_S,
    Session,
    Sessions,
    SignInThrottle,
    check_secret,
)
from livechannel.errors import (
    AccessDenied,
    InvalidArgument,
    OssError,
    RequestTimeout,
    StorageError,
)

log = logging.getLogger("livechannel.console")

PREFIX = "/-/console"
API = f"{PREFIX}/api"
COOKIE = "livechannel_console"
CSRF_HEADER = "X-Console-CSRF"
# Console bodies are a channel's form or a sign-in: a few hundred bytes.
MAX_BODY_BYTES = 8 * 1024
MAX_KEY_ID_CHARS = 128  # access key ids are ~24 characters; longer is not one of ours
MAX_SECRET_CHARS = 256
# The files the console is made of: nothing else under static/ is served.
STATIC_FILES = {
    "index.html": "text/html; charset=utf-8",
    "console.css": "text/css; charset=utf-8",
    "console.js": "text/javascript; charset=utf-8",
    "hls.min.js": "text/javascript; charset=utf-8",
    "hls.js-LICENSE.txt": "text/plain; charset=utf-8",
}
# Same-origin only. hls.js runs its transmuxer in a worker made from a blob: URL and feeds the
# <video> through a MediaSource (blob:); snapshots and segments are fetched from this origin.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "media-src 'self' blob:; connect-src 'self'; worker-src 'self' blob:; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


class NotSignedIn(OssError):
    status, code = 401, "NotSignedIn"


class InvalidCredentials(OssError):
    status, code = 403, "InvalidAccessKeyIdOrSecret"


class TooManySignIns(OssError):
    status, code = 429, "TooManySignInAttempts"


@dataclass(frozen=True, slots=True)
class Console:
    api: ApiContext
    sessions: Sessions
    throttle: SignInThrottle


Reply = dict[str, Any] | web.StreamResponse
DataHandler = Callable[[web.Request, Console, Session], Awaitable[Reply]]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def error_reply(e: OssError) -> web.Response:
    return web.json_response({"error": {"code": e.code, "message": e.message}}, status=e.status)


def _set_cookie(response: web.StreamResponse, request: web.Request, token: str, max_s: int) -> None:
    response.set_cookie(
        COOKIE, token, max_age=max_s, path=f"{PREFIX}/", httponly=True, samesite="Strict",
        secure=request.secure,
    )  # fmt: skip


def _same_origin(request: web.Request) -> None:
    """A browser sends Origin with every POST/DELETE; a foreign one is refused outright."""
    origin = request.headers.get("Origin")
    if origin is not None and urlsplit(origin).netloc != request.host:
        raise AccessDenied("the request comes from another site")


async def json_body(request: web.Request, console: Console) -> dict[str, Any]:
    # Only JSON: a cross-site HTML form cannot send it, and a script would need a preflight.
    if request.content_type != "application/json":
        raise InvalidArgument("the body must be application/json")
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise InvalidArgument("the body is too large")
    timeout_s = console.api.http_body_timeout_s  # a trickled body would hold a request slot
    try:
        async with asyncio.timeout(timeout_s):
            raw = b""
            while chunk := await request.content.read(MAX_BODY_BYTES + 1 - len(raw)):
                raw += chunk
                if len(raw) > MAX_BODY_BYTES:
                    raise InvalidArgument("the body is too large")
    except TimeoutError:
        raise RequestTimeout(f"the request body did not arrive within {timeout_s:g} s") from None
    try:
        body = json.loads(raw)
    except ValueError:
        raise InvalidArgument("the body is not JSON") from None
    if not isinstance(body, dict):
        raise InvalidArgument("the body must be a JSON object")
    return body


def session_of(request: web.Request, console: Console) -> Session:
    token = request.cookies.get(COOKIE, "")
    session = console.sessions.check(token, console.api.now_ms())
    if session is None:
        raise NotSignedIn("sign in first (no session, or it expired)")
    return session


def guarded(console: Console, handler: DataHandler, *, change: bool) -> Handler:
    """Wrap a data route: a valid session (for changes also the CSRF header and a same-site
    Origin), JSON errors, and a renewed cookie once the session is past half its life."""

    async def handle(request: web.Request) -> web.StreamResponse:
        try:
            session = session_of(request, console)
            if change:
                _same_origin(request)
                if not console.sessions.csrf_ok(session, request.headers.get(CSRF_HEADER)):
                    raise AccessDenied(f"missing or wrong {CSRF_HEADER} header")
            reply = await handler(request, console, session)
        except OssError as e:
            return error_reply(e)
        except StorageError as e:
            log.warning("console %s: storage failed: %s", request.path, e)
            return web.json_response(
                {"error": {"code": "ServiceUnavailable", "message": "the object store failed"}},
                status=503,
            )
        response = reply if isinstance(reply, web.StreamResponse) else web.json_response(reply)
        renewed = console.sessions.renewed(session, console.api.now_ms())
        if renewed is not None:
            _set_cookie(response, request, console.sessions.token(renewed), _max_age_s(console))
        return response

    return handle


def _max_age_s(console: Console) -> int:
    return max(1, console.sessions.idle_ms // 1000)


async def sign_in(request: web.Request, console: Console) -> web.StreamResponse:
    """POST {access_key_id, secret}: checked once; only the cookie is kept by the browser."""
    try:
        _same_origin(request)  # no logging a victim into the attacker's account either
        body = await json_body(request, console)
        key_id, secret = body.get("access_key_id"), body.get("secret")
        if not isinstance(key_id, str) or not isinstance(secret, str):
            raise InvalidArgument("access_key_id and secret are required")
        address, now = request.remote or "", console.api.now_ms()
        if not console.throttle.allowed(address, now):
            raise TooManySignIns(
                f"too many wrong sign-ins from your address; try again in {SIGN_IN_WINDOW_S} s"
            )
        if (
            len(key_id) > MAX_KEY_ID_CHARS
            or len(secret) > MAX_SECRET_CHARS
            or not check_secret(console.api.credentials, key_id, secret)
        ):
            console.throttle.failed(address, now)
            log.info("console sign-in refused for access key %r from %s", key_id, address)
            raise InvalidCredentials("the access key id or secret is wrong")
    except OssError as e:
        return error_reply(e)
    session, token = console.sessions.sign_in(key_id, console.api.now_ms())
    log.info("console sign-in of access key %s from %s", key_id, request.remote)
    response = web.json_response(_session_json(console, session))
    _set_cookie(response, request, token, _max_age_s(console))
    return response


def _session_json(console: Console, session: Session) -> dict[str, Any]:
    return {
        "access_key_id": session.key_id,
        "csrf": console.sessions.csrf_token(session),
        "expires_ms": session.expires_ms,
    }


async def who(request: web.Request, console: Console, session: Session) -> Reply:
    return _session_json(console, session)


async def sign_out(request: web.Request, console: Console, session: Session) -> Reply:
    console.sessions.sign_out(session, console.api.now_ms())
    response = web.json_response({"signed_out": True})
    response.del_cookie(COOKIE, path=f"{PREFIX}/")
    return response


def static_file(name: str) -> tuple[bytes, str]:
    body = resources.files("livechannel.console").joinpath("static", name).read_bytes()
    return body, f'"{hashlib.sha256(body).hexdigest()[:32]}"'


def static_handler(files: dict[str, tuple[bytes, str]]) -> Handler:
    async def handle(request: web.Request) -> web.StreamResponse:
        name = request.match_info.get("name", "index.html")
        if name not in files:
            raise web.HTTPNotFound()
        body, etag = files[name]
        headers = {"ETag": etag, "Cache-Control": "no-cache"}  # revalidate: upgrades show
        if request.headers.get("If-None-Match") == etag:
            return web.Response(status=304, headers=headers)
        return web.Response(body=body, content_type=None, headers={
            **headers, "Content-Type": STATIC_FILES[name]})  # fmt: skip

    return handle


async def security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """On every console answer: no CORS (the API's read-anything-from-anywhere rule is for
    players, not for the console), no framing, no caching of data."""
    if not (request.path == PREFIX or request.path.startswith(PREFIX + "/")):
        return
    for name in ("Access-Control-Allow-Origin", "Access-Control-Expose-Headers"):
        response.headers.popall(name, None)
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "no-referrer"
    if request.path.startswith(API + "/"):
        response.headers["Cache-Control"] = "no-store"
