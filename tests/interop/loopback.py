"""Loopback plumbing shared by the interop tests: free ports, and processes stopped by PID."""

from __future__ import annotations

import socket
import subprocess
import time

STOP_TIMEOUT_S = 10.0  # a client that ignores SIGTERM this long is killed


def free_port() -> int:
    """A loopback TCP port nobody listens on now (the tool we start binds it right after)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, timeout_s: float, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            if proc.poll() is not None:
                raise AssertionError(f"{proc.args!r} exited with {proc.returncode}") from None
            if time.monotonic() > deadline:
                raise AssertionError(f"nothing listens on 127.0.0.1:{port}") from None
            time.sleep(0.05)


def stop(proc: subprocess.Popen[bytes]) -> int:
    """SIGTERM by PID, SIGKILL if it lingers; returns the exit status."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode
