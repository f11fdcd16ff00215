"""Which workers are dead, for the stale-push sweep.

Every push row names its worker (livechannel.fleet.node.WorkerName: node id, worker index,
host and pid; rows written before node ids say "<host>:<pid>"). A worker whose heartbeats stop for
STALE_PUSH_MS is presumed dead and its pushes are ended, so that its channels can be
published again after a kill -9, a power loss or a machine gone. On this host a dead worker
can be told from a slow one: if its process still exists it is overloaded or paused (a full
box, SIGSTOP, a long kernel stall), and ending its pushes would disconnect every publisher it
holds, who then reconnect into the same overload. That happened in the benchmark: at 575
publishers on two workers one worker's heartbeats fell 6 s behind and the other ended all of
its ~290 pushes at once. So a live process's pushes are ended only after HUNG_WORKER_MS of
silence; its existence never makes the sweep sooner than STALE_PUSH_MS (a pid seen from
another PID namespace, or reused, may not be that worker).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Mapping

from livechannel.fleet.node import WorkerName

# A worker silent this long on another host (or whose process is gone here) is dead.
STALE_PUSH_MS = 5_000
# A worker of this host whose process exists but has been silent this long is hung, not just
# slow: end its pushes so that their publishers can reconnect elsewhere.
HUNG_WORKER_MS = 60_000


def runs_here(worker: str) -> bool:
    """Whether `worker` names a process that exists on this host."""
    name = WorkerName.parse(worker)
    if name is not None:
        host, pid = name.host, str(name.pid)
    else:
        host, _, pid = worker.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, under another user
    return True


def dead_workers(
    latest_heartbeat_ms: Mapping[str, int],
    me: str,
    now_ms: int,
    runs_here: Callable[[str], bool] = runs_here,
) -> set[str]:
    """Workers (other than `me`) whose running pushes should be ended, from each worker's
    latest heartbeat."""
    dead = set()
    for worker, heartbeat_ms in latest_heartbeat_ms.items():
        silent_ms = now_ms - heartbeat_ms
        if worker == me or silent_ms <= STALE_PUSH_MS:
            continue
        if silent_ms > HUNG_WORKER_MS or not runs_here(worker):
            dead.add(worker)
    return dead
