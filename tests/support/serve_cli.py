"""`livechannel serve` as a user runs it: a subprocess whose banner the test reads, stopped by
PID with SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

BANNER_TIMEOUT_S = 20
SHUTDOWN_BOUND_S = 15  # server.SHUTDOWN_TIMEOUT_S plus start-up slack
LOOPBACK_ANY_PORT = ("--rtmp-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0")


def banner_ended(line: str) -> bool:
    """The banner's last line: the play command, or the pointer to the admin commands."""
    line = line.strip()
    return (
        line.startswith("ffplay ")
        or "no demo channel" in line
        or line.startswith("livechannel url NAME")
    )


def start_service(
    data_dir: Path,
    env: dict[str, str],
    *extra: str,
    show_urls: bool = True,
    command: Sequence[str] = (sys.executable, "-m", "livechannel"),
    listen: Sequence[str] = LOOPBACK_ANY_PORT,
    inherit_env: bool = True,
    cwd: Path | None = None,
) -> tuple[subprocess.Popen[str], str]:
    """Start `serve` and return it with its banner (everything printed up to its end).
    `inherit_env` False: only `env` (an installed copy must not see this tree's PYTHONPATH)."""
    cmd = [*command, "serve", "--data-dir", str(data_dir), *listen,
           *(["--show-urls"] if show_urls else []), *extra]  # fmt: skip
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=cwd,
        env={**os.environ, **env} if inherit_env else env,
    )  # fmt: skip
    lines: list[str] = []
    deadline = time.monotonic() + BANNER_TIMEOUT_S
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if banner_ended(line):
            return proc, "".join(lines)
    proc.kill()
    proc.wait()
    raise AssertionError("no banner:\n" + "".join(lines))


def stop_service(proc: subprocess.Popen[str]) -> str:
    """SIGTERM; the rest of its output. It must exit 0 within SHUTDOWN_BOUND_S."""
    proc.send_signal(signal.SIGTERM)
    try:
        out, _ = proc.communicate(timeout=SHUTDOWN_BOUND_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        raise AssertionError(f"serve did not stop within {SHUTDOWN_BOUND_S} s:\n{out}") from None
    assert proc.returncode == 0, out
    return out
