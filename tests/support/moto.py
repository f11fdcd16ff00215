"""moto's standalone S3 server as a subprocess on 127.0.0.1, port 0, stopped by its PID.

Real signed S3 requests over HTTP reach it; every test takes a fresh S3 bucket.
"""

from __future__ import annotations

import itertools
import os
import re
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass

START_TIMEOUT_S = 20.0  # moto imports a lot on first start
STOP_TIMEOUT_S = 5.0
ACCESS_KEY_ID = "AKIAMOTOTEST"
SECRET_ACCESS_KEY = "moto-secret"
REGION = "us-east-1"
_LISTENING = re.compile(rb"Running on http://[0-9.]+:(\d+)")
_names = itertools.count()


@dataclass
class MotoServer:
    process: subprocess.Popen[bytes]
    port: int
    reader: threading.Thread  # drains moto's log so it never blocks on a full pipe
    host: str = "127.0.0.1"

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    def new_bucket(self, *, public: bool = False) -> str:
        """Create an empty S3 bucket with a fresh name (moto does not check signatures on
        this unsigned call). `public`: anyone may read its objects (moto honours the
        public-read bucket ACL for that, where AWS would need a bucket policy)."""
        name = f"lc-{os.getpid()}-{next(_names)}"
        headers = {"x-amz-acl": "public-read"} if public else {}
        request = urllib.request.Request(f"{self.endpoint}/{name}", method="PUT", headers=headers)
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200
        return name

    def storage_table(self, bucket: str, **extra: object) -> dict[str, object]:
        """A `[buckets.storage]` table for `bucket` on this server."""
        return {
            "type": "s3",
            "bucket": bucket,
            "endpoint": self.endpoint,
            "region": REGION,
            "access_key_id": ACCESS_KEY_ID,
            "secret_access_key": SECRET_ACCESS_KEY,
            **extra,
        }

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(STOP_TIMEOUT_S)
        self.reader.join(STOP_TIMEOUT_S)  # it ends at EOF, now that moto has exited
        if self.process.stdout is not None:
            self.process.stdout.close()


def start_moto(host: str = "127.0.0.1") -> MotoServer:
    """`host`: the address to listen on (the multi-node test's bridge, for its nodes)."""
    env = {**os.environ, "MOTO_ALLOW_NONEXISTENT_REGION": "true"}
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", host, "-p", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
    )  # fmt: skip
    assert process.stdout is not None
    found: list[int] = []
    seen: list[bytes] = []

    def read_banner() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            seen.append(line)
            match = _LISTENING.search(line)
            if match and not found:
                found.append(int(match.group(1)))

    reader = threading.Thread(target=read_banner, name="moto output", daemon=True)
    reader.start()
    deadline = time.monotonic() + START_TIMEOUT_S
    while not found:
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"moto did not start: {b''.join(seen).decode(errors='replace')}")
        time.sleep(0.05)
    return MotoServer(process, found[0], reader, host)
