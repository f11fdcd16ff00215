"""Which workers the stale-push sweep may end (livechannel.fleet.liveness), with real processes for
"exists on this host"."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

from livechannel.fleet.liveness import (
    HUNG_WORKER_MS,
    STALE_PUSH_MS,
    dead_workers,
    runs_here,
)
from livechannel.fleet.node import WorkerName

HOST = socket.gethostname()
NOW_MS = 1_000_000


def worker_id() -> str:
    return str(WorkerName.here("node-a", 0))


def test_runs_here_tells_a_live_process_from_an_exited_one() -> None:
    assert runs_here(worker_id())
    assert runs_here(f"{HOST}:{os.getpid()}")  # a row written before node ids
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()  # reaped: the pid names no process now
    assert not runs_here(f"{HOST}:{child.pid}")
    assert runs_here(f"{HOST}:1")  # init exists, whoever owns it
    assert not runs_here(f"another-{HOST}:{os.getpid()}")
    assert not runs_here(f"{HOST}:not-a-pid")
    assert not runs_here("no colon")
    assert not runs_here(f"node-a/0@{HOST}:{child.pid}")
    assert not runs_here(f"node-a/0@another-{HOST}:{os.getpid()}")


def test_only_silent_workers_are_dead_and_never_the_sweeper_itself() -> None:
    beats = {
        "me": NOW_MS - 10 * STALE_PUSH_MS,
        "fresh": NOW_MS,
        "at-the-limit": NOW_MS - STALE_PUSH_MS,
        "silent": NOW_MS - STALE_PUSH_MS - 1,
    }
    assert dead_workers(beats, "me", NOW_MS, runs_here=lambda worker: False) == {"silent"}


def test_a_slow_worker_of_this_host_is_spared_until_it_counts_as_hung() -> None:
    here = {"local-slow", "local-hung"}
    beats = {
        "local-slow": NOW_MS - 3 * STALE_PUSH_MS,
        "local-hung": NOW_MS - HUNG_WORKER_MS - 1,
        "remote-slow": NOW_MS - 3 * STALE_PUSH_MS,
    }
    assert dead_workers(beats, "me", NOW_MS, here.__contains__) == {"local-hung", "remote-slow"}


def test_with_real_processes() -> None:
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    try:
        silent = NOW_MS - 2 * STALE_PUSH_MS
        beats = {f"{HOST}:{sleeper.pid}": silent, f"{HOST}:{gone.pid}": silent}
        assert dead_workers(beats, worker_id(), NOW_MS) == {f"{HOST}:{gone.pid}"}
    finally:
        sleeper.kill()
        sleeper.wait()
