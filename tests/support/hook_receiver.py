"""A webhook receiver on loopback, as an operator would write one: a real aiohttp server in
its own thread that checks every request's signature the way docs/operations.md says and
answers as the test tells it (allow, deny with a reason, be slow).

Every request is kept with whether its signature verified; `stop()` closes the server.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import threading
import time
from dataclasses import dataclass
from typing import Any

from aiohttp import web

START_TIMEOUT_S = 10.0
WAIT_S = 15.0


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    verified: bool  # HMAC-SHA256 of the body with the secret matches the signature header

    @property
    def json(self) -> Any:
        return json.loads(self.body)


def verify(secret: str, body: bytes, header: str) -> bool:
    """What a receiver does (docs/operations.md, Webhooks)."""
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, header)


class HookReceiver:
    def __init__(self, secret: str, *, deny_reason: str = "quota exceeded",
                 slow_s: float = 2.0) -> None:  # fmt: skip
        self.secret, self.deny_reason, self.slow_s = secret, deny_reason, slow_s
        self.received: list[Received] = []
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="hook receiver", daemon=True)
        self.port = 0

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def start(self) -> HookReceiver:
        self._thread.start()
        if not self._ready.wait(START_TIMEOUT_S):
            raise RuntimeError("hook receiver did not start")
        return self

    def stop(self) -> None:
        async def cleanup() -> None:
            if self._runner is not None:
                await self._runner.cleanup()

        asyncio.run_coroutine_threadsafe(cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def events(self, name: str | None = None) -> list[Received]:
        with self._lock:
            got = list(self.received)
        return [r for r in got if name is None or r.headers.get("X-Livechannel-Event") == name]

    def wait_for(self, name: str, count: int = 1) -> list[Received]:
        deadline = time.monotonic() + WAIT_S
        while len(found := self.events(name)) < count:
            assert time.monotonic() < deadline, [r.json for r in self.events()]
            time.sleep(0.05)
        return found

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        ok = verify(self.secret, body, request.headers.get("X-Livechannel-Signature", ""))
        with self._lock:
            self.received.append(Received(request.path, dict(request.headers), body, ok))
        if not ok:
            return web.json_response({"reason": "bad signature"}, status=401)
        if request.path == "/deny":
            return web.json_response({"reason": self.deny_reason}, status=403)
        if request.path == "/slow":
            await asyncio.sleep(self.slow_s)
        return web.json_response({})

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)

        async def serve() -> None:
            app = web.Application()
            app.router.add_post("/{tail:.*}", self._handle)
            self._runner = web.AppRunner(app, access_log=None)
            await self._runner.setup()
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            await site.start()
            self.port = self._runner.addresses[0][1]
            self._ready.set()

        self._loop.run_until_complete(serve())
        self._loop.run_forever()
        self._loop.close()
