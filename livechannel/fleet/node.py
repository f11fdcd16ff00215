"""Who this node is, across its restarts, and which push rows belong to it.

A node (one `livechannel serve`, whatever its --workers) has an id kept in its data directory
(`<data_dir>/node-id`, created on first start) unless configured (`node_id` in TOML,
LIVECHANNEL_NODE_ID, --node-id). Host names and process ids are not identities: a container
gets a new host name when it is recreated and reuses pid 1 on every start, two machines may
share a name. The id is what lets a restarted node tell its own earlier pushes (left running
in the metadata store by a kill -9 or a power loss) from another live node's, and end them
before it accepts publishers instead of waiting for the stale-push timeout: an encoder that
reconnects at once (OBS does) is then accepted, not refused as "already live".

Each worker process signs its push rows `<node-id>/<index>@<host>:<pid>` (`WorkerName`): the
node and worker index say whose it is across restarts; host and pid only let the stale sweep
tell a slow local process from a dead one (livechannel.fleet.liveness).
"""

from __future__ import annotations

import os
import re
import secrets
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

NODE_ID_FILE = "node-id"
# Ids appear in push rows, logs and /-/status; a short, printable, separator-free name keeps
# `WorkerName` unambiguous to parse.
MAX_NODE_ID_CHARS = 64
_NODE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_WORKER = re.compile(r"(?P<node>[^/@]+)/(?P<index>\d+)@(?P<host>[^@]*):(?P<pid>\d+)")


class NodeIdError(ValueError):
    """A configured or stored node id is not usable; the message says which and why."""


def check_node_id(text: str, where: str) -> str:
    if len(text) > MAX_NODE_ID_CHARS or not _NODE_ID.fullmatch(text):
        raise NodeIdError(
            f"{where}: a node id is 1-{MAX_NODE_ID_CHARS} characters of A-Z a-z 0-9 . _ - "
            f"(starting with a letter or digit), got {text!r}"
        )
    return text


class NodeIdentity:
    @staticmethod
    def load(data_dir: Path, override: str | None = None) -> str:
        """This node's id: `override` if given, else the one kept in `<data_dir>/node-id`,
        created there (host name + random suffix, readable in logs) on first start."""
        if override:
            return check_node_id(override, "node_id")
        path = data_dir / NODE_ID_FILE
        try:
            return check_node_id(path.read_text().strip(), str(path))
        except FileNotFoundError:
            pass
        data_dir.mkdir(parents=True, exist_ok=True)
        host = re.sub(r"[^A-Za-z0-9._-]", "-", socket.gethostname()).strip(".-_")[:40]
        fresh = f"{host or 'node'}-{secrets.token_hex(4)}"
        # Written aside, then linked into place: a reader never sees half an id, and of two
        # processes starting on one new data directory, exactly one id wins.
        tmp = data_dir / f".{NODE_ID_FILE}.{os.getpid()}.tmp"
        tmp.write_text(fresh + "\n")
        try:
            os.link(tmp, path)
        except FileExistsError:
            return check_node_id(path.read_text().strip(), str(path))
        finally:
            tmp.unlink()
        return fresh


@dataclass(frozen=True, slots=True)
class WorkerName:
    """The owner recorded on a push row."""

    node: str
    index: int
    host: str
    pid: int

    @classmethod
    def here(cls, node: str, index: int) -> WorkerName:
        return cls(node, index, socket.gethostname(), os.getpid())

    @classmethod
    def parse(cls, text: str) -> WorkerName | None:
        """None for a row written before node ids ("host:pid") or by something else."""
        m = _WORKER.fullmatch(text)
        if m is None:
            return None
        return cls(m["node"], int(m["index"]), m["host"], int(m["pid"]))

    def __str__(self) -> str:
        return f"{self.node}/{self.index}@{self.host}:{self.pid}"


def earlier_lives(
    owners: Iterable[str], me: WorkerName, workers: int, runs_here: Callable[[str], bool]
) -> list[str]:
    """The owners among `owners` that are this node in an earlier run, for worker `me` to end
    before it listens: this worker's own index (whatever host and pid it had), indexes the
    node no longer runs (restarted with fewer workers), and any index whose process is gone
    (`runs_here`, livechannel.fleet.liveness): with --workers the siblings start together,
    and a publisher reaching this worker first must not wait for a slower sibling to end its
    own earlier push. A sibling of this run is alive, so it is never taken."""
    mine = []
    for owner in owners:
        name = WorkerName.parse(owner)
        if name is None or name.node != me.node:
            continue
        if name.index == me.index or name.index >= workers or not runs_here(owner):
            mine.append(owner)
    return mine
