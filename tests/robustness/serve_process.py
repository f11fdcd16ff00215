"""`python -m livechannel serve` as a real subprocess (uvloop, signal handlers, the CLI), for
the kill -9 and SIGTERM tests and the soak script. Stopped by PID, never by name."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import oss2

ACCESS_KEY_ID = "LTAIrobustkey0001"
ACCESS_KEY_SECRET = "robust-secret-0123456789abcdef"
BUCKET = "live"
START_TIMEOUT_S = 20.0
REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServeProcess:
    def __init__(self, data_dir: Path, *, config: Path | None = None,
                 log_level: str = "INFO", args: Sequence[str] = (),
                 http_port: int = 0) -> None:  # fmt: skip
        self.data_dir = data_dir
        self.args = list(args)  # more `serve` flags
        self.config = config
        self.log_level = log_level
        self.log_path = data_dir.parent / f"{data_dir.name}-serve.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.rtmp_port = 0
        self.http_port = self.fixed_http_port = http_port  # 0: a free one at each start
        self._log_offset = 0

    def start(self) -> ServeProcess:
        self.rtmp_port, self.http_port = free_port(), self.fixed_http_port or free_port()
        cmd = [sys.executable, "-m", "livechannel", "serve", "--data-dir", str(self.data_dir),
               "--rtmp-listen", f"127.0.0.1:{self.rtmp_port}",
               "--http-listen", f"127.0.0.1:{self.http_port}",
               "--log-level", self.log_level]  # fmt: skip
        if self.config is not None:
            cmd += ["--config", str(self.config)]
        cmd += self.args
        env = {**os.environ, "LIVECHANNEL_ACCESS_KEY_ID": ACCESS_KEY_ID,
               "LIVECHANNEL_ACCESS_KEY_SECRET": ACCESS_KEY_SECRET,
               "PYTHONPATH": str(REPO)}  # fmt: skip
        self._log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child owns it until it exits
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO)
        log.close()
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"serve exited with {self.proc.returncode}:\n{self.log()}")
            if "is running" in self.log():
                return self
            time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"serve did not start:\n{self.log()}")

    def log(self) -> str:
        """What the current process (since the last start) has logged."""
        if not self.log_path.exists():
            return ""
        with open(self.log_path, "rb") as f:
            f.seek(self._log_offset)
            return f.read().decode(errors="replace")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def kill(self) -> None:
        """kill -9: no cleanup of any kind runs."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def terminate(self, timeout_s: float) -> float:
        """SIGTERM; seconds until the process exited (AssertionError past `timeout_s`)."""
        assert self.proc is not None
        start = time.monotonic()
        os.kill(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"serve did not exit within {timeout_s} s of SIGTERM") from None
        return time.monotonic() - start

    def bucket(self) -> oss2.Bucket:
        auth = oss2.Auth(ACCESS_KEY_ID, ACCESS_KEY_SECRET)
        return oss2.Bucket(auth, f"http://127.0.0.1:{self.http_port}", BUCKET)

    def signed_publish_url(self, channel: str, expires_s: int = 3600) -> str:
        url = self.bucket().sign_rtmp_url(channel, "playlist.m3u8", expires_s)
        return url.replace(f":{self.http_port}/", f":{self.rtmp_port}/", 1)

    def object_path(self, key: str) -> Path:
        return self.data_dir / "buckets" / BUCKET / key
