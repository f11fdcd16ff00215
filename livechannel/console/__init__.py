"""The browser console at `/-/console/`: sign in with an access key, watch every channel's
live figures, preview a channel, and manage channels (docs/console.md).

Plain HTML, CSS and JavaScript served from static/ (no build step), with a pinned copy of
hls.js and its licence; the data comes from a small JSON API under `/-/console/api/` that
only a signed-in browser can use.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from livechannel.api.addressing import bucket_from_host
from livechannel.api.context import ApiContext
from livechannel.api.middleware import OPERATION
from livechannel.console import actions, views
from livechannel.console.routes import (
    API,
    PREFIX,
    STATIC_FILES,
    Console,
    DataHandler,
    guarded,
    security_headers,
    sign_in,
    sign_out,
    static_file,
    static_handler,
    who,
)
from livechannel.console.session import Sessions, SignInThrottle

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# method, path under API, handler, changes something
DATA_ROUTES: tuple[tuple[str, str, DataHandler, bool], ...] = (
    ("GET", "/session", who, False),
    ("DELETE", "/session", sign_out, True),
    ("GET", "/buckets", views.buckets, False),
    ("GET", "/channels", views.channels, False),
    ("GET", "/channel", views.channel, False),
    ("GET", "/urls", views.urls, False),
    ("POST", "/channels", actions.create, True),
    ("POST", "/channel/status", actions.set_status, True),
    ("POST", "/channel/delete", actions.delete, True),
    ("POST", "/vod", actions.vod, True),
)


def mounter(api: ApiContext, session_idle_s: float) -> Callable[[web.Application, Handler], None]:
    """What `create_app` calls to add the console's routes before the OSS catch-all."""
    console = Console(api, Sessions(api.credentials, session_idle_s), SignInThrottle())

    def mount(app: web.Application, oss: Handler) -> None:
        def only_at_service_host(handler: Handler) -> Handler:
            # `<bucket>.<domain>/-/console/...` is an object of that bucket, as for /-/status.
            async def handle(request: web.Request) -> web.StreamResponse:
                if bucket_from_host(request.headers.get("Host", ""), api.urls.domain):
                    return await oss(request)
                request[OPERATION] = "Console"  # one label in the HTTP request metrics
                return await handler(request)

            return handle

        files = {name: static_file(name) for name in STATIC_FILES}
        static = only_at_service_host(static_handler(files))

        async def to_index(request: web.Request) -> web.StreamResponse:
            raise web.HTTPFound(f"{PREFIX}/")

        app.router.add_get(PREFIX, only_at_service_host(to_index))
        app.router.add_get(f"{PREFIX}/", static)
        app.router.add_get(PREFIX + "/static/{name}", static)

        async def signing_in(request: web.Request) -> web.StreamResponse:
            return await sign_in(request, console)

        app.router.add_post(f"{API}/session", only_at_service_host(signing_in))
        for method, path, handler, change in DATA_ROUTES:
            wrapped = guarded(console, handler, change=change)
            app.router.add_route(method, API + path, only_at_service_host(wrapped))

        async def unknown(request: web.Request) -> web.StreamResponse:
            raise web.HTTPNotFound()  # never the OSS handler: `-` is no bucket anyway

        app.router.add_route("*", PREFIX + "/{tail:.*}", only_at_service_host(unknown))
        app.on_response_prepare.append(security_headers)

    return mount
