"""A CPU quota for a server's processes (a cgroup), so a box can stand in for a smaller one.

On this project's 2-core box the load generator shares the cores with the server, so "do two
workers take twice what one takes" cannot be measured with whole cores (docs/performance.md).
With `--cpu-per-worker C` the benchmark gives each server C cores per worker instead (one
quota for its whole process tree: loop, storage threads, all workers), as if it ran on a box
of that size with the load generator elsewhere. Needs root and the cgroup cpu controller
(v2, or v1's `cpu` hierarchy); the quota ends with the server: stop() empties the group.
"""

from __future__ import annotations

import contextlib
import errno
import os
import time
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
# CFS accounting period. Shorter than the kernel's default 100 ms: a group that spends its
# quota early waits for the next period, and a 100 ms wait would show in playlist latency.
PERIOD_US = 20_000
# cgroup v1 refused (EINVAL) a process just started by a long test run, and took it when
# asked again: a few tries, 50 ms apart, before the refusal stands.
ATTACH_ATTEMPTS = 20
ATTACH_RETRY_S = 0.05


def _hierarchy() -> tuple[Path, bool] | None:
    """(where groups are made, is it cgroup v2), or None without a usable cpu controller."""
    controllers = CGROUP_ROOT / "cgroup.controllers"
    if controllers.exists() and "cpu" in controllers.read_text().split():
        return CGROUP_ROOT, True
    v1 = CGROUP_ROOT / "cpu"
    if (v1 / "cpu.cfs_quota_us").exists():
        return v1, False
    return None


def available() -> bool:
    found = _hierarchy()
    return found is not None and os.access(found[0], os.W_OK)


class CpuCap:
    """A cgroup allowing `cores` CPUs' worth of time per period to the processes added."""

    def __init__(self, name: str, cores: float) -> None:
        found = _hierarchy()
        if found is None:
            raise RuntimeError("no cgroup cpu controller: --cpu-per-worker needs one (and root)")
        base, self.v2 = found
        if self.v2:
            with contextlib.suppress(OSError):  # already on, or set by the system
                (base / "cgroup.subtree_control").write_text("+cpu")
        self.path = base / name
        self.path.mkdir(exist_ok=True)
        quota_us = max(1000, round(cores * PERIOD_US))  # the kernel's least quota is 1 ms
        if self.v2:
            (self.path / "cpu.max").write_text(f"{quota_us} {PERIOD_US}")
        else:
            (self.path / "cpu.cfs_period_us").write_text(str(PERIOD_US))
            (self.path / "cpu.cfs_quota_us").write_text(str(quota_us))

    def add(self, pids: list[int]) -> None:
        """Move these processes (all their threads) in; their children are born inside."""
        for pid in pids:
            for attempt in range(ATTACH_ATTEMPTS):
                try:
                    (self.path / "cgroup.procs").write_text(str(pid))
                    break
                except ProcessLookupError:
                    break
                except OSError as e:
                    if e.errno != errno.EINVAL or attempt == ATTACH_ATTEMPTS - 1:
                        raise
                    time.sleep(ATTACH_RETRY_S)

    def close(self) -> None:
        """Move what is left back to the root group and remove the group."""
        with contextlib.suppress(OSError):
            for pid in (self.path / "cgroup.procs").read_text().split():
                with contextlib.suppress(OSError):
                    (self.path.parent / "cgroup.procs").write_text(pid)
        with contextlib.suppress(OSError):
            self.path.rmdir()
