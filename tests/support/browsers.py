"""Headless Chromium and Firefox, driven over their websocket protocols with aiohttp's client:
Chromium over the Chrome DevTools Protocol, Firefox over WebDriver BiDi (W3C).

For pages that must be operated, not only watched: fill forms, click, read the DOM, take
screenshots (Chromium), set cookies. The protocol runs on an event loop in a thread of its
own so tests stay synchronous; every command waits for its answer with a timeout. Both
browsers start with port 0 and say which port they took; each runs in its own process
group, which is killed at the end.

    with Chromium(workdir) as browser:      # or Firefox(workdir)
        browser.navigate(url)
        browser.wait_for("document.querySelector('#x') !== null", 10)
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import os
import re
import shutil
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
START_TIMEOUT_S = CHROMIUM_START_MARGIN_S  # a cold browser start on a busy 2-core machine
# Firefox prints where its WebDriver BiDi server listens (it took port 0's pick).
BIDI_LISTENING = re.compile(rb"WebDriver BiDi listening on (ws://\S+)")
# Firefox preferences for a quiet test browser: no first-run pages or update checks, muted
# media may autoplay. The remote agent adds its own recommended set (no background traffic).
FIREFOX_PREFS = {
    "browser.shell.checkDefaultBrowser": False,
    "browser.startup.homepage_override.mstone": "ignore",
    "app.update.disabledForTesting": True,
    "datareporting.policy.dataSubmissionEnabled": False,
    "media.autoplay.default": 0,
    "network.captive-portal-service.enabled": False,
    "network.connectivity-service.enabled": False,
}


class BrowserError(AssertionError):
    pass


class _Browser:
    """The process, the websocket and the command/answer matching both protocols share."""

    name = "browser"

    def __init__(self, workdir: Path, width: int = 1280, height: int = 900) -> None:
        self.workdir = workdir
        self.size = (width, height)
        self.proc: subprocess.Popen[bytes] | None = None
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._session: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None

    def command(self) -> list[str]:
        raise NotImplementedError

    def websocket_url(self) -> str:
        raise NotImplementedError

    def setup(self) -> None:
        """Protocol set-up once connected."""

    def __enter__(self) -> _Browser:
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "profile").mkdir(exist_ok=True)
        log = (self.log_path).open("wb")
        # Its own session: the helpers a browser forks share our child's group id.
        self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL, stdout=log,
                                     stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
        log.close()
        self._thread.start()
        try:
            self._run(self._connect(self.websocket_url()))
            self.setup()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def log_path(self) -> Path:
        return self.workdir / f"{self.name}.log"

    def log_tail(self) -> str:
        with contextlib.suppress(OSError):
            return self.log_path.read_text(errors="replace")[-3000:]
        return ""

    def wait_started(self, find: Any) -> Any:
        """Poll `find()` until it returns something, while the browser runs."""
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise BrowserError(f"{self.name} exited: {self.log_tail()}")
            with contextlib.suppress(OSError, ValueError, IndexError):
                found = find()
                if found:
                    return found
            time.sleep(POLL_INTERVAL_S)
        raise BrowserError(f"{self.name} did not open its protocol port: {self.log_tail()}")

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

    async def _connect(self, url: str) -> None:
        self._session = aiohttp.ClientSession()
        self._ws = await self._session.ws_connect(url, max_msg_size=0)
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

    def _run(self, coro: Any, timeout_s: float = CALL_TIMEOUT_S) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout_s)

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
            raise BrowserError(f"{method}: {answer['error']} {answer.get('message', '')}")
        return dict(answer.get("result", {}))

    # --- what tests use --------------------------------------------------------------------

    def evaluate(self, expression: str) -> Any:
        raise NotImplementedError

    def navigate(self, url: str) -> None:
        raise NotImplementedError

    def cookies(self) -> list[dict[str, Any]]:
        raise NotImplementedError

    def wait_for(self, expression: str, timeout_s: float, what: str = "") -> Any:
        """Poll until the expression is truthy; its value."""
        deadline = time.monotonic() + timeout_s
        while True:
            value = self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise BrowserError(f"{self.name}: timed out waiting for {what or expression}")
            time.sleep(POLL_INTERVAL_S)


class Chromium(_Browser):
    name = "chromium"

    def command(self) -> list[str]:
        return ["chromium", *CHROMIUM_FLAGS, f"--user-data-dir={self.workdir / 'profile'}",
                "--remote-debugging-port=0", f"--window-size={self.size[0]},{self.size[1]}",
                "about:blank"]  # fmt: skip

    def websocket_url(self) -> str:
        """Chromium writes the port it chose to DevToolsActivePort in its profile; the page
        target's socket is listed at /json/list."""
        marker = self.workdir / "profile" / "DevToolsActivePort"
        port = self.wait_started(lambda: int(marker.read_text().splitlines()[0]))

        async def page_target() -> str:
            async with (
                aiohttp.ClientSession() as http,
                http.get(f"http://127.0.0.1:{port}/json/list") as r,
            ):
                targets = await r.json()
            return str(next(t for t in targets if t["type"] == "page")["webSocketDebuggerUrl"])

        return str(self._run(page_target()))

    def setup(self) -> None:
        self.call("Page.enable")
        self.call("Runtime.enable")
        self.call("Network.enable")
        self.call("Emulation.setDeviceMetricsOverride", width=self.size[0],
                  height=self.size[1], deviceScaleFactor=1, mobile=False)  # fmt: skip

    def evaluate(self, expression: str) -> Any:
        """The expression's value (JSON-able), awaiting it if it is a promise."""
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True,
                           awaitPromise=True, userGesture=True)  # fmt: skip
        if "exceptionDetails" in result:
            raise BrowserError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

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


class Firefox(_Browser):
    name = "firefox"

    def command(self) -> list[str]:
        profile = self.workdir / "profile"
        prefs = "".join(f"user_pref({json.dumps(k)}, {json.dumps(v)});\n"
                        for k, v in FIREFOX_PREFS.items())  # fmt: skip
        (profile / "user.js").write_text(prefs)
        binary = shutil.which("firefox-esr") or "firefox"  # Debian's name, or upstream's
        return [binary, "--headless", "--no-remote", "--profile", str(profile),
                "--remote-debugging-port=0", f"--width={self.size[0]}",
                f"--height={self.size[1]}", "about:blank"]  # fmt: skip

    def websocket_url(self) -> str:
        found = self.wait_started(lambda: BIDI_LISTENING.search(self.log_path.read_bytes()))
        return f"{found.group(1).decode()}/session"

    def setup(self) -> None:
        self.call("session.new", capabilities={"alwaysMatch": {"acceptInsecureCerts": False}})
        tree = self.call("browsingContext.getTree")
        self.context = tree["contexts"][0]["context"]

    def evaluate(self, expression: str) -> Any:
        """The expression's value: JSON-encoded in the page, decoded here (BiDi's own value
        serialisation is richer than tests need)."""
        wrapped = (
            f"Promise.resolve(({expression})).then(v => JSON.stringify(v === undefined ? null : v))"
        )
        result = self.call("script.evaluate", expression=wrapped, awaitPromise=True,
                           target={"context": self.context}, userActivation=True)  # fmt: skip
        if result.get("type") == "exception":
            raise BrowserError(f"{expression}: {result['exceptionDetails']}")
        return json.loads(result["result"]["value"])

    def navigate(self, url: str) -> None:
        self.call("browsingContext.navigate", context=self.context, url=url, wait="complete")

    def cookies(self) -> list[dict[str, Any]]:
        found = self.call("storage.getCookies")["cookies"]
        return [{**c, "value": c["value"]["value"]} for c in found]
