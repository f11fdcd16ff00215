"""HAProxy (Debian's package) in front of livechannel nodes, started and stopped by the tests.

The configuration is the one deploy/haproxy/haproxy.cfg documents, with the test's
addresses: TCP mode on both ports (the HTTP port carries RTMP too), the PROXY protocol to
every node (v1 on the RTMP port, v2 on the HTTP port, so both versions are exercised),
health checks on GET /-/healthz (with the PROXY header the nodes require).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"
START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 10.0


def available() -> bool:
    return Path(HAPROXY).exists()


@dataclass(frozen=True, slots=True)
class Backend:
    name: str
    host: str
    rtmp_port: int
    http_port: int


def render(
    rtmp_bind: tuple[str, int],
    http_bind: tuple[str, int],
    backends: list[Backend],
    source: str | None = None,
    check_interval_ms: int = 1000,
    node_ports: dict[str, tuple[int, int]] | None = None,
) -> str:
    """`source`: the address HAProxy connects to the nodes from (so a test can tell the
    balancer's address from the client's). `node_ports`: backend name -> (RTMP, HTTP) ports on
    127.0.0.1 that reach that one node (a test talks to a chosen node through them)."""
    src = f" source {source}" if source else ""
    lines = [
        "global",
        "    maxconn 4096",
        "defaults",
        "    mode tcp",
        "    timeout connect 3s",
        "    timeout client 75s",
        "    timeout server 75s",
        "    timeout check 2s",
        f"frontend rtmp\n    bind {rtmp_bind[0]}:{rtmp_bind[1]}\n    default_backend rtmp_nodes",
        f"frontend http\n    bind {http_bind[0]}:{http_bind[1]}\n    default_backend http_nodes",
        "backend rtmp_nodes",
        "    balance leastconn",
        "    option httpchk GET /-/healthz",
    ]
    for b in backends:
        lines.append(
            f"    server {b.name} {b.host}:{b.rtmp_port} send-proxy check port {b.http_port} "
            f"check-send-proxy inter {check_interval_ms} fall 2 rise 1{src}"
        )
    lines += ["backend http_nodes", "    balance roundrobin", "    option httpchk GET /-/healthz"]
    for b in backends:
        lines.append(
            f"    server {b.name} {b.host}:{b.http_port} send-proxy-v2 check check-send-proxy "
            f"inter {check_interval_ms} fall 2 rise 1{src}"
        )
    for b in backends:
        if node_ports is None or b.name not in node_ports:
            continue
        rtmp, http = node_ports[b.name]
        for kind, port, target, proxy in (
            ("rtmp", rtmp, b.rtmp_port, "send-proxy"),
            ("http", http, b.http_port, "send-proxy-v2"),
        ):
            lines += [
                f"listen {b.name}_{kind}",
                f"    bind 127.0.0.1:{port}",
                f"    server {b.name} {b.host}:{target} {proxy}{src}",
            ]
    return "\n".join(lines) + "\n"


class HAProxy:
    def __init__(self, config: str, ports: tuple[int, ...]) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="lc-haproxy-"))
        self.config_path = self.dir / "haproxy.cfg"
        self.config_path.write_text(config)
        self.ports = ports
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> HAProxy:
        check = subprocess.run(
            [HAPROXY, "-c", "-q", "-f", str(self.config_path)], capture_output=True, timeout=30
        )
        if check.returncode != 0:
            raise RuntimeError(f"haproxy config refused: {check.stderr.decode()}")
        log = open(self.dir / "haproxy.log", "wb")  # noqa: SIM115 - the child holds it
        self.process = subprocess.Popen(
            [HAPROXY, "-db", "-f", str(self.config_path)],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        log.close()
        deadline = time.monotonic() + START_TIMEOUT_S
        for port in self.ports:
            while True:
                if self.process.poll() is not None:
                    raise RuntimeError(f"haproxy exited: {self.log_tail()}")
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        self.stop()
                        raise RuntimeError("haproxy did not listen") from None
                    time.sleep(0.05)
        return self

    def wait_serving(self, http_port: int, timeout_s: float = START_TIMEOUT_S) -> None:
        """Until a request through the HTTP frontend is answered (servers start as down
        until their first health check passes)."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/-/healthz", timeout=2):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"nothing served: {self.log_tail()}") from None
                time.sleep(0.1)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join((self.dir / "haproxy.log").read_text().splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        process = self.process
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(STOP_TIMEOUT_S)
        shutil.rmtree(self.dir, ignore_errors=True)
