"""The aiohttp application of the OSS-dialect HTTP API.

One catch-all route: the bucket may be in the Host or in the path, and keys must be split off
the raw path, so routing is ours (`addressing` -> `auth` -> `dispatch`), not aiohttp's.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable

from aiohttp import web

from livechannel.api.addressing import bucket_from_host, parse_target
from livechannel.api.auth import authorize
from livechannel.api.call import Call, identify
from livechannel.api.context import ApiContext
from livechannel.api.dispatch import resolve
from livechannel.api.middleware import (
    OPERATION,
    errors_middleware,
    make_common_headers,
    metrics_middleware,
)
from livechannel.api.status import STATUS_PATH, status_handler
from livechannel.errors import NoSuchBucket, ServiceUnavailable
from livechannel.ops.health import HEALTHZ_PATH, READYZ_PATH, ReadyProbe, healthz, readyz_handler
from livechannel.ops.metrics_workers import METRICS_PATH
from livechannel.store.base import Acl

CTX_KEY = web.AppKey("livechannel.api.context", ApiContext)


async def _handle(request: web.Request) -> web.StreamResponse:
    ctx = request.app[CTX_KEY]
    target = parse_target(request.headers.get("Host", ""), request.raw_path, ctx.urls.domain)
    identity = identify(request, ctx, target)
    acl = Acl.PRIVATE
    if target.bucket is not None:
        if target.bucket not in ctx.storages:
            raise NoSuchBucket("The specified bucket does not exist.", BucketName=target.bucket)
        record = await ctx.store.get_bucket(target.bucket)
        acl = record.acl if record is not None else Acl.PRIVATE
    operation = resolve(request.method, target)
    request[OPERATION] = operation.name
    authorize(operation.access, acl, identity)
    return await operation.handler(Call(request, ctx, target, identity, acl))


# Outside the request-slot limit: probes, and scrapes (cheap, bounded, and wanted most when
# the service is busy).
PROBE_PATHS = frozenset({HEALTHZ_PATH, READYZ_PATH, METRICS_PATH})
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Middleware = Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]


def concurrency_limit(max_requests: int, max_per_ip: int) -> Middleware:
    """At most `max_requests` handlers run at once, `max_per_ip` of them for one client
    address; the next one gets 503 ServiceUnavailable (retryable; oss2 retries it) instead of
    waiting in an unbounded queue in our memory. The per-address share keeps a few clients
    that stop reading from holding every slot (the body and send deadlines free them later)."""
    in_flight = 0
    per_ip: Counter[str] = Counter()

    @web.middleware
    async def limit(request: web.Request, handler: Handler) -> web.StreamResponse:
        nonlocal in_flight
        if request.path in PROBE_PATHS:
            # Cheap and bounded (ops.health); a liveness probe refused while the service is
            # merely busy would have it restarted.
            return await handler(request)
        address = request.remote or ""
        if in_flight >= max_requests:
            raise ServiceUnavailable("too many requests in flight; retry")
        # No address: a sibling worker over its local socket (api/owners.py), handing on
        # a client that the worker it reached has counted already.
        if address and per_ip[address] >= max_per_ip:
            raise ServiceUnavailable("too many requests in flight from your address; retry")
        in_flight += 1
        per_ip[address] += 1
        try:
            return await handler(request)
        finally:
            in_flight -= 1
            per_ip[address] -= 1
            if not per_ip[address]:
                del per_ip[address]  # the table holds only addresses with requests in flight

    return limit


def _path_style_only(ctx: ApiContext, handler: Handler) -> Handler:
    """`/-/...` is ours only without a bucket in the Host: `<bucket>.<domain>/-/healthz` is
    an object of that bucket (`-` is no valid bucket name, so path style cannot clash)."""

    async def route(request: web.Request) -> web.StreamResponse:
        if bucket_from_host(request.headers.get("Host", ""), ctx.urls.domain) is not None:
            return await _handle(request)
        return await handler(request)

    return route


def create_app(
    ctx: ApiContext, mount: Callable[[web.Application, Handler], None] | None = None
) -> web.Application:
    """`mount` adds routes of parts above the API (the browser console) before the OSS
    catch-all; it gets the catch-all for requests those routes must hand back."""
    middlewares: list[Middleware] = [
        *([metrics_middleware] if ctx.count_requests else []),
        errors_middleware,
        concurrency_limit(ctx.max_http_requests, ctx.max_http_requests_per_ip),
    ]
    app = web.Application(middlewares=middlewares)  # type: ignore[arg-type]  # aiohttp's own alias
    app[CTX_KEY] = ctx
    app.on_response_prepare.append(make_common_headers(ctx))  # first: mounted parts amend it
    app.router.add_get(STATUS_PATH, status_handler(ctx, _handle))  # before the catch-all
    probe = ReadyProbe(ctx.store, ctx.storages)
    app.router.add_get(HEALTHZ_PATH, _path_style_only(ctx, healthz))
    app.router.add_get(READYZ_PATH, _path_style_only(ctx, readyz_handler(probe)))
    if ctx.metrics is not None:
        app.router.add_get(METRICS_PATH, _path_style_only(ctx, ctx.metrics))
    if mount is not None:
        mount(app, _handle)
    # [\s\S], not ".": a decoded path may hold a newline (%0A), and it must get an OSS error
    # from our handler, not aiohttp's plain 404.
    app.router.add_route("*", r"/{tail:[\s\S]*}", _handle)
    return app
