"""A player page on its own loopback origin, and headless Chromium to open it.

The page (player/) loads hls.js from the same origin, plays a URL of our API (another origin:
a different port, so every playlist and segment fetch goes through CORS), and POSTs a JSON
report back to /report here. No DevTools protocol is needed: the page tells us itself.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from tests.interop.hlsjs import ensure_hlsjs
from tests.interop.loopback import stop

PLAYER_DIR = Path(__file__).parent / "player"
CHROMIUM_START_MARGIN_S = 20.0  # a cold Chromium start on a busy 2-core machine
MAX_REPORT_BYTES = 1 << 20  # a report is a few KB; anything bigger is not from our page
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",  # root in a container: the setuid sandbox is unavailable
    "--disable-gpu",
    "--disable-dev-shm-usage",  # small /dev/shm in containers
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
    "--mute-audio",
    # Only loopback resolves: whatever Chromium might still want from the internet fails here.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
)


class PlayerServer:
    """Serves player.html, player.js and hls.min.js; collects POSTed reports in a queue."""

    def __init__(self) -> None:
        files = {
            "/player.html": (PLAYER_DIR / "player.html", "text/html; charset=utf-8"),
            "/player.js": (PLAYER_DIR / "player.js", "text/javascript"),
            "/hls.min.js": (ensure_hlsjs(), "text/javascript"),
        }
        reports: queue.Queue[dict[str, Any]] = queue.Queue()
        self.reports = reports

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path not in files:
                    self.send_error(404)
                    return
                file, content_type = files[path]
                body = file.read_bytes()
                self.send_response(200)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                if self.path != "/report" or not 0 < length <= MAX_REPORT_BYTES:
                    self.send_error(400)
                    return
                reports.put(json.loads(self.rfile.read(length)))
                self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass  # quiet: the report says what matters

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def page_url(
        self,
        src: str,
        *,
        seconds: float,
        budget_s: float,
        start_s: float | None = None,
        low_latency: bool | None = None,
    ) -> str:
        params = {"src": src, "seconds": seconds, "budget_ms": int(budget_s * 1000)}
        if start_s is not None:
            params["start"] = start_s
        if low_latency is not None:
            params["low_latency"] = int(low_latency)
        return f"{self.origin}/player.html?{urlencode(params)}"

    def __enter__(self) -> PlayerServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()


def play_in_chromium(
    server: PlayerServer,
    src: str,
    *,
    seconds: float,
    budget_s: float,
    workdir: Path,
    start_s: float | None = None,
    low_latency: bool | None = None,
) -> dict[str, Any]:
    """Open the player page on `src` and wait for its report (the page gives up after
    budget_s; we wait a little longer for Chromium's own start-up)."""
    workdir.mkdir(parents=True, exist_ok=True)
    cmd = ["chromium", *CHROMIUM_FLAGS, f"--user-data-dir={workdir / 'profile'}",
           server.page_url(src, seconds=seconds, budget_s=budget_s, start_s=start_s,
                           low_latency=low_latency)]  # fmt: skip
    with (workdir / "chromium.log").open("wb") as log:
        # Its own session: the renderer and GPU helpers it forks share our child's group id.
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    try:
        return server.reports.get(timeout=budget_s + CHROMIUM_START_MARGIN_S)
    except queue.Empty:
        log_text = (workdir / "chromium.log").read_text(errors="replace")[-3000:]
        raise AssertionError(f"no report from the player page\n{log_text}") from None
    finally:
        stop(proc)
        with contextlib.suppress(ProcessLookupError):  # helpers of the browser we started
            os.killpg(proc.pid, signal.SIGKILL)
