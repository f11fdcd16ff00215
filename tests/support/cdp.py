"""Headless Chromium driven over the Chrome DevTools Protocol (a websocket, aiohttp's client).

For pages that must be operated, not only watched: type into forms, click, read the DOM,
take screenshots, set cookies. The protocol runs on an event loop in a thread of its own so
tests stay synchronous; every call waits for its answer with a timeout.

    with Chromium(workdir) as browser:
        browser.navigate(url)
        browser.wait_for("document.querySelector('#x') !== null")
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import aiohttp

from tests.interop.browser import CHROMIUM_FLAGS, CHROMIUM_START_MARGIN_S
from tests.interop.loopback import stop

CALL_TIMEOUT_S = 15.0  # one protocol command; a busy 2-core machine answers well within this
POLL_INTERVAL_S = 0.1


class BrowserError(AssertionError):
    pass


class Chromium:
    def __init__(self, workdir: Path, width: int = 1280, height: int = 900) -> None:
        self.workdir = workdir
        self.size = (width, height)
        self.proc: subprocess.Popen[bytes] | None = None
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.events: list[dict[str, Any]] = []
        self._session: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None

    # --- life cycle ------------------------------------------------------------------------

    def __enter__(self) -> Chromium:
        self.workdir.mkdir(parents=True, exist_ok=True)
        profile = self.workdir / "profile"
        cmd = ["chromium", *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
               "--remote-debugging-port=0", "--remote-allow-origins=*",
               f"--window-size={self.size[0]},{self.size[1]}", "about:blank"]  # fmt: skip
        log = (self.workdir / "chromium.log").open("wb")
        # Its own session: the renderer and GPU helpers it forks share our child's group id.
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log,
                                     stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
        log.close()
        self._thread.start()
        try:
            port = self._devtools_port(profile)
            self._run(self._connect(port))
            self.call("Page.enable")
            self.call("Runtime.enable")
            self.call("Network.enable")
            self.call("Emulation.setDeviceMetricsOverride", width=self.size[0],
                      height=self.size[1], deviceScaleFactor=1, mobile=False)  # fmt: skip
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._thread.is_alive():
            with contextlib.suppress(Exception):
                self._run(self._disconnect(), timeout_s=5)
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(5)
        if not self._thread.is_alive() and not self.loop.is_closed():
            self.loop.close()
        if self.proc is not None:
            stop(self.proc)
            with contextlib.suppress(ProcessLookupError):  # helpers of the browser we started
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc = None

    def _devtools_port(self, profile: Path) -> int:
        """Chromium writes the port it chose (port 0) to DevToolsActivePort in its profile."""
        marker = profile / "DevToolsActivePort"
        deadline = time.monotonic() + CHROMIUM_START_MARGIN_S
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise BrowserError(f"chromium exited: {self.log_tail()}")
            with contextlib.suppress(OSError, ValueError, IndexError):
                return int(marker.read_text().splitlines()[0])
            time.sleep(POLL_INTERVAL_S)
        raise BrowserError(f"chromium did not open its DevTools port: {self.log_tail()}")

    def log_tail(self) -> str:
        with contextlib.suppress(OSError):
            return (self.workdir / "chromium.log").read_text(errors="replace")[-3000:]
        return ""

    async def _connect(self, port: int) -> None:
        self._session = aiohttp.ClientSession()
        async with self._session.get(f"http://127.0.0.1:{port}/json/list") as r:
            targets = await r.json()
        [page] = [t for t in targets if t["type"] == "page"][:1]
        self._ws = await self._session.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0)
        asyncio.get_running_loop().create_task(self._read())

    async def _disconnect(self) -> None:
        if self._ws is not None:
            await self._ws.close()
        if self._session is not None:
            await self._session.close()

    async def _read(self) -> None:
        assert self._ws is not None
        async for message in self._ws:
            data = json.loads(message.data)
            future = self._pending.pop(data.get("id", -1), None)
            if future is not None and not future.done():
                future.set_result(data)
            elif "method" in data:
                self.events.append(data)

    def _run(self, coro: Any, timeout_s: float = CALL_TIMEOUT_S) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout_s)

    # --- protocol --------------------------------------------------------------------------

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        async def send() -> dict[str, Any]:
            assert self._ws is not None
            call_id = next(self._ids)
            future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
            self._pending[call_id] = future
            await self._ws.send_str(json.dumps({"id": call_id, "method": method, "params": params}))
            return await future

        answer: dict[str, Any] = self._run(send())
        if "error" in answer:
            raise BrowserError(f"{method}: {answer['error']}")
        return dict(answer.get("result", {}))

    def evaluate(self, expression: str) -> Any:
        """The expression's value (JSON-able), awaiting it if it is a promise."""
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True,
                           awaitPromise=True, userGesture=True)  # fmt: skip
        if "exceptionDetails" in result:
            raise BrowserError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout_s: float, what: str = "") -> Any:
        """Poll until the expression is truthy; its value."""
        deadline = time.monotonic() + timeout_s
        while True:
            value = self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise BrowserError(f"timed out waiting for {what or expression}")
            time.sleep(POLL_INTERVAL_S)

    def navigate(self, url: str) -> None:
        self.call("Page.navigate", url=url)
        self.wait_for("document.readyState === 'complete'", CALL_TIMEOUT_S, "page load")

    def screenshot(self, path: Path) -> None:
        """The whole page, as tall as its content (at the viewport's width)."""
        height = self.evaluate("document.documentElement.scrollHeight")
        clip = {"x": 0, "y": 0, "width": self.size[0], "height": height, "scale": 1}
        data = self.call("Page.captureScreenshot", format="png", clip=clip,
                         captureBeyondViewport=True)["data"]  # fmt: skip
        path.write_bytes(base64.b64decode(data))

    def cookies(self) -> list[dict[str, Any]]:
        return list(self.call("Network.getAllCookies")["cookies"])
