"""Network namespaces on a bridge, one per node, for the multi-node test (needs root).

The host end of the bridge holds the `.1` address (PostgreSQL, the S3 test server and HAProxy
reach the nodes and are reached from there); node i lives in its own namespace with address
`.1{i}` and, through `command`, its own host name (a UTS namespace). Names carry this
process's id, so parallel runs do not collide; `remove` deletes everything it made, and is
safe to call after a partial setup.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass, field

IP = shutil.which("ip") or "/usr/sbin/ip"
UNSHARE = shutil.which("unshare") or "/usr/bin/unshare"


def available() -> tuple[bool, str]:
    """Whether namespaces can be made here, and if not, why (a reason a user accepts)."""
    if os.geteuid() != 0:
        return False, "network namespaces need root"
    if not os.path.exists(IP) or not os.path.exists(UNSHARE):
        return False, "iproute2/util-linux not installed (scripts/test.sh installs them)"
    probe = f"lcprobe{os.getpid() % 100000}"
    made = subprocess.run([IP, "netns", "add", probe], capture_output=True, text=True)
    if made.returncode != 0:
        return False, f"cannot create a network namespace: {made.stderr.strip()}"
    subprocess.run([IP, "netns", "del", probe], capture_output=True)
    return True, ""


def _ip(*args: str) -> None:
    subprocess.run([IP, *args], check=True, capture_output=True, timeout=30)


@dataclass
class Network:
    count: int
    prefix: str = ""  # "10.R.S" - chosen from the pid so parallel runs differ
    tag: str = ""
    made_namespaces: list[str] = field(default_factory=list)
    made_links: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        pid = os.getpid()
        self.tag = f"{pid % 100000}"
        self.prefix = f"10.{200 + pid % 50}.{pid // 50 % 250}"

    @property
    def bridge(self) -> str:
        return f"lcbr{self.tag}"

    @property
    def host_address(self) -> str:
        return f"{self.prefix}.1"

    def namespace(self, i: int) -> str:
        return f"lc{self.tag}n{i}"

    def address(self, i: int) -> str:
        return f"{self.prefix}.{10 + i}"

    def hostname(self, i: int) -> str:
        return f"lc-node{i}"

    def create(self) -> Network:
        try:
            _ip("link", "add", self.bridge, "type", "bridge")
            self.made_links.append(self.bridge)
            _ip("addr", "add", f"{self.host_address}/24", "dev", self.bridge)
            _ip("link", "set", self.bridge, "up")
            for i in range(1, self.count + 1):
                ns, host_end = self.namespace(i), f"lc{self.tag}h{i}"
                _ip("netns", "add", ns)
                self.made_namespaces.append(ns)
                _ip("link", "add", host_end, "type", "veth", "peer", "name", "eth0", "netns", ns)
                self.made_links.append(host_end)
                _ip("link", "set", host_end, "master", self.bridge, "up")
                _ip("-n", ns, "addr", "add", f"{self.address(i)}/24", "dev", "eth0")
                _ip("-n", ns, "link", "set", "eth0", "up")
                _ip("-n", ns, "link", "set", "lo", "up")
        except BaseException:
            self.remove()
            raise
        return self

    def command(self, i: int, argv: list[str]) -> list[str]:
        """`argv` run in node i's namespace under its own host name. Each step execs the
        next, so the PID of the started process is the PID of `argv` itself."""
        script = 'hostname "$0" && exec "$@"'
        return [IP, "netns", "exec", self.namespace(i), UNSHARE, "--uts", "sh", "-c", script,
                self.hostname(i), *argv]  # fmt: skip

    def remove(self) -> None:
        for ns in reversed(self.made_namespaces):
            subprocess.run([IP, "netns", "del", ns], capture_output=True, timeout=30)
        self.made_namespaces.clear()
        for link in reversed(self.made_links):  # a veth goes with its namespace; the bridge
            subprocess.run([IP, "link", "del", link], capture_output=True, timeout=30)
        self.made_links.clear()
