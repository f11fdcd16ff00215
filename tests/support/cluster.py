"""Three livechannel nodes as real processes, each in its own network namespace with its own
address and host name, on one PostgreSQL and one S3 bucket (moto), behind HAProxy.

    host (bridge .1): PostgreSQL, moto, HAProxy (127.0.0.1: the balancer's RTMP and HTTP
                      frontends, and per-node frontends to talk to one chosen node)
    node i (.1i):     livechannel serve --store postgresql://... --proxy-protocol

Every process is stopped by its PID and the namespaces and bridge are removed by `stop`,
whatever state `start` reached.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import oss2

from tests.support import haproxy
from tests.support.moto import MotoServer, start_moto
from tests.support.netns import Network
from tests.support.postgres import PostgresServer, free_port, start_postgres
from tests.support.service import ACCESS_KEY_ID, ACCESS_KEY_SECRET, BUCKET

ROOT = Path(__file__).resolve().parents[2]
NODE_RTMP_PORT, NODE_HTTP_PORT = 1935, 8080  # inside each namespace: the defaults
NODE_STOP_TIMEOUT_S = 15.0
END_GRACE_S = 3


def _toml(value: object) -> str:
    return json.dumps(value)  # strings, numbers and booleans read the same in TOML


class Cluster:
    def __init__(self, tmp: Path, nodes: int = 3) -> None:
        self.tmp = tmp
        self.net = Network(nodes)
        self.count = nodes
        self.pg: PostgresServer | None = None
        self.moto: MotoServer | None = None
        self.s3_bucket = ""
        self.store_url = ""
        self.procs: dict[int, subprocess.Popen[bytes]] = {}
        self.balancer: haproxy.HAProxy | None = None
        self.rtmp_port = self.http_port = 0
        self.node_ports: dict[int, tuple[int, int]] = {}

    # --- lifecycle ----------------------------------------------------------------------
    def start(self) -> Cluster:
        self.net.create()
        host = self.net.host_address
        self.pg = start_postgres(listen=(host,))
        self.store_url = self.pg.url(self.pg.new_database(), host=host)
        self.moto = start_moto(host)
        self.s3_bucket = self.moto.new_bucket(public=True)  # the test reads objects directly
        for i in range(1, self.count + 1):
            self.start_node(i)
        self.rtmp_port, self.http_port = free_port(), free_port()
        self.node_ports = {i: (free_port(), free_port()) for i in range(1, self.count + 1)}
        backends = [
            haproxy.Backend(f"node{i}", self.net.address(i), NODE_RTMP_PORT, NODE_HTTP_PORT)
            for i in range(1, self.count + 1)
        ]
        config = haproxy.render(
            ("127.0.0.1", self.rtmp_port), ("127.0.0.1", self.http_port), backends,
            node_ports={f"node{i}": p for i, p in self.node_ports.items()},
        )  # fmt: skip
        per_node = [port for pair in self.node_ports.values() for port in pair]
        ports = (self.rtmp_port, self.http_port, *per_node)
        self.balancer = haproxy.HAProxy(config, ports).start()
        for i in range(1, self.count + 1):
            self.balancer.wait_serving(self.node_ports[i][1], timeout_s=30)
        self.balancer.wait_serving(self.http_port)
        return self

    def start_node(self, i: int) -> None:
        assert self.moto is not None
        data = self.tmp / f"node{i}"
        data.mkdir(parents=True, exist_ok=True)
        storage = self.moto.storage_table(self.s3_bucket)
        config = "\n".join(
            [
                f"data_dir = {_toml(str(data))}",
                f"rtmp_listen = {_toml(f'{self.net.address(i)}:{NODE_RTMP_PORT}')}",
                f"http_listen = {_toml(f'{self.net.address(i)}:{NODE_HTTP_PORT}')}",
                'domain = "127.0.0.1"',
                f"end_grace_s = {END_GRACE_S}",
                'demo_channel = ""',
                f"store = {_toml(self.store_url)}",
                "proxy_protocol = true",
                f"node_id = {_toml(f'node{i}')}",
                "[[access_keys]]",
                f"id = {_toml(ACCESS_KEY_ID)}",
                f"secret = {_toml(ACCESS_KEY_SECRET)}",
                "[[buckets]]",
                f"name = {_toml(BUCKET)}",
                'acl = "private"',
                "[buckets.storage]",
                *(f"{k} = {_toml(v)}" for k, v in storage.items()),
            ]
        )
        (data / "livechannel.toml").write_text(config + "\n")
        config_file = str(data / "livechannel.toml")
        argv = [sys.executable, "-m", "livechannel", "serve", "--config", config_file]
        log = open(self.tmp / f"node{i}.log", "ab")  # noqa: SIM115 - the child holds it
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.procs[i] = subprocess.Popen(
            self.net.command(i, argv), stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, env=env,
        )  # fmt: skip
        log.close()

    def kill(self, i: int) -> None:
        """kill -9 of node i (its process, by PID)."""
        self.procs[i].send_signal(signal.SIGKILL)
        self.procs[i].wait(NODE_STOP_TIMEOUT_S)

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(NODE_STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(NODE_STOP_TIMEOUT_S)
        for part in (self.balancer, self.moto, self.pg):
            if part is not None:
                with contextlib.suppress(Exception):
                    part.destroy() if isinstance(part, PostgresServer) else part.stop()
        self.net.remove()

    def logs(self, lines: int = 25) -> str:
        out = []
        for i in range(1, self.count + 1):
            path = self.tmp / f"node{i}.log"
            text = path.read_text(errors="replace") if path.exists() else ""
            out.append(f"--- node{i}\n" + "\n".join(text.splitlines()[-lines:]))
        return "\n".join(out)

    # --- clients ------------------------------------------------------------------------
    def bucket(self, node: int | None = None) -> oss2.Bucket:
        """The API through the balancer, or through node `node`'s own frontend."""
        port = self.http_port if node is None else self.node_ports[node][1]
        auth = oss2.Auth(ACCESS_KEY_ID, ACCESS_KEY_SECRET)
        return oss2.Bucket(auth, f"http://127.0.0.1:{port}", BUCKET)

    def publish_url(self, channel: str, node: int | None = None) -> str:
        """A signed RTMP URL to the balancer's RTMP port, or to node `node`'s."""
        url = self.bucket().sign_rtmp_url(channel, "playlist.m3u8", 3600)
        port = self.rtmp_port if node is None else self.node_ports[node][0]
        return url.replace(f":{self.http_port}/", f":{port}/", 1)

    def sql(self, query: str) -> list[list[str]]:
        assert self.pg is not None
        db = self.store_url.rsplit("/", 1)[1]
        out = self.pg.psql(query, db)
        return [line.split("|") for line in out.splitlines() if line]

    def owner(self, channel: str) -> int | None:
        """Which node runs the channel's push now (from the push record's node id)."""
        rows = self.sql(f"SELECT worker FROM pushes WHERE channel = '{channel}' AND end_ms IS NULL")
        return int(rows[0][0].split("/", 1)[0].removeprefix("node")) if rows else None

    def object(self, key: str) -> bytes:
        """An object read straight from S3 (not through our API, which needs the store)."""
        assert self.moto is not None
        url = f"{self.moto.endpoint}/{self.s3_bucket}/{key}"
        with urllib.request.urlopen(url, timeout=10) as r:
            return bytes(r.read())

    def segment_objects(self, channel: str) -> list[str]:
        """Keys of the channel's .ts objects in S3."""
        assert self.moto is not None
        url = f"{self.moto.endpoint}/{self.s3_bucket}?list-type=2&prefix={channel}/"
        keys: list[str] = []
        token = ""
        while True:
            page = url + (f"&continuation-token={token}" if token else "")
            with urllib.request.urlopen(page, timeout=10) as r:
                body = r.read().decode()
            keys += [k for k in _between(body, "<Key>", "</Key>") if k.endswith(".ts")]
            more = _between(body, "<NextContinuationToken>", "</NextContinuationToken>")
            if not more:
                return keys
            token = urllib.parse.quote(more[0], safe="")


def _between(text: str, start: str, end: str) -> list[str]:
    out = []
    pos = 0
    while (i := text.find(start, pos)) >= 0:
        j = text.find(end, i)
        out.append(text[i + len(start) : j])
        pos = j
    return out


def wait_for(what: str, check: object, timeout_s: float = 15.0, every_s: float = 0.05) -> float:
    """Poll until `check()` is truthy; return how long it took."""
    t0 = time.monotonic()
    while not check():  # type: ignore[operator]
        if time.monotonic() - t0 > timeout_s:
            raise AssertionError(f"timed out after {timeout_s:.0f} s: {what}")
        time.sleep(every_s)
    return time.monotonic() - t0
