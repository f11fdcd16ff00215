"""The benchmark keeps working: a short run of bench/run_bench.py against ours and nginx-rtmp
(real servers, the real load generator), and the capacity lines it writes into the docs.
The figures themselves are the benchmark's business, not the suite's (docs/performance.md)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.report import capacity_lines
from bench.servers import NginxServer

ROOT = Path(__file__).resolve().parent.parent
SMOKE_TIMEOUT_S = 240  # two short trials (~15 s each) plus making the input on a cold cache


def test_a_short_run_measures_both_servers(tmp_path: Path) -> None:
    # scripts/test.sh installs nginx-rtmp; without it the benchmark measures ours alone.
    servers = {"ours": "livechannel --workers 1", "nginx": "nginx-rtmp (1 worker)"}
    if not NginxServer.available():
        del servers["nginx"]
    out = tmp_path / "bench.json"
    cmd = [
        sys.executable, "bench/run_bench.py", "--ns", "3", "--duration", "7", "--ramp", "1",
        "--warmup-s", "0", "--no-unpaced", "--no-capacity", "--json", str(out),
        "--servers", ",".join(servers), "--input", str(tmp_path / "input.flv"),
        "--workdir", str(tmp_path), "--chunk-size", "128", "--write-interval-ms", "10",
    ]  # fmt: skip
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=SMOKE_TIMEOUT_S)
    assert r.returncode == 0, r.stderr[-2000:]
    rows = {row["server"]: row for row in json.loads(out.read_text())["paced"]}
    assert set(rows) == set(servers.values())
    for name, row in rows.items():
        assert row["errors"] == [] and row["on_time"], row
        written, expected = map(int, row["segments"].split("/"))
        assert expected >= 3 and written >= expected, row  # a segment per publisher or more
        assert row["cpu_s_per_stream_min"] > 0, row
        # user and system time come in clock ticks (10 ms): nginx-rtmp's user share of a 7 s
        # trial with 3 publishers can round to 0, their sum cannot
        assert row["cpu_user_s"] + row["cpu_sys_s"] > 0, row
        assert (row["chunk_size"], row["write_interval_ms"]) == (128, 10.0), row
        assert f"| 3 | {name} |" in r.stdout
    # the side-by-side table names the cell: regime, chunk size, write interval, N
    assert "| asis | 128 | 10 | 3 |" in r.stdout


def test_capacity_lines_give_each_servers_scaling() -> None:
    lines = capacity_lines({"ours": {1: (400, 425), 2: (700, 725)}, "nginx": {1: (300, 325)}})
    text = "\n".join(lines)
    assert "livechannel (`serve --workers N`), N = 1: 400 publishers stayed on time, 425" in text
    assert "two workers / one = 1.75x (target 1.7x: met)" in text
    assert "nginx-rtmp (`worker_processes N`), N = 1: 300" in text
    assert text.count("two workers / one") == 1  # nginx has no two-worker count here
    lines = capacity_lines({"ours": {1: (400, None), 2: (0, None)}})
    assert "N = 1: 400 publishers stayed on time (no larger count was tried)" in lines[0]
    assert "N = 2: not measured (time budget spent)" in lines[1]


CAP_CORES = 0.25
CAP_MEASURE_S = 1.5
FORK_WAIT_S = 15.0  # a capped interpreter on a loaded machine took over 0.3 s to start


def test_a_cpu_cap_holds_a_server_to_its_quota() -> None:
    """`--cpu-per-worker` stands a box in for a smaller one: a busy process (and the child it
    starts after joining) gets its quota, not a core each."""
    from bench import cpu_cap
    from bench.servers import cpu_seconds, process_tree

    if not cpu_cap.available():
        pytest.skip("a CPU quota needs root and a cgroup cpu controller (the benchmark's option)")
    busy = "import os, time; os.fork(); t = time.time() + 30\nwhile time.time() < t: pass"
    # The ordinary time-sharing policy, whatever the test process has: cgroup v1's cpu
    # controller refuses (EINVAL) a real-time task in a group without an RT budget.
    ordinary = os.sched_param(0)
    proc = subprocess.Popen(
        [sys.executable, "-c", busy],
        preexec_fn=lambda: os.sched_setscheduler(0, os.SCHED_OTHER, ordinary),
    )
    cap = cpu_cap.CpuCap(f"lctest-{proc.pid}", CAP_CORES)
    try:
        policy = os.sched_getscheduler(proc.pid)
        try:
            cap.add([proc.pid])  # the fork may come before or after: both end inside
        except OSError as e:
            raise AssertionError(
                f"{e}; policy {policy}, in {Path(f'/proc/{proc.pid}/cgroup').read_text()}"
            ) from e
        deadline = time.monotonic() + FORK_WAIT_S
        while len(pids := process_tree(proc.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)  # the interpreter starts inside a quarter of a core
        cap.add(pids)
        assert len(pids) == 2
        before, t0 = cpu_seconds(pids), time.monotonic()
        time.sleep(CAP_MEASURE_S)
        used = (cpu_seconds(pids) - before) / (time.monotonic() - t0)
        assert 0.5 * CAP_CORES < used < 1.5 * CAP_CORES  # two busy processes, one quota
    finally:
        for pid in process_tree(proc.pid):
            os.kill(pid, signal.SIGKILL)
        proc.wait()
        cap.close()
    assert not cap.path.exists()


def test_a_pair_run_measures_both_variants_in_one_window(tmp_path: Path) -> None:
    """bench/pair.py: both servers under load at once, who starts first alternating."""
    out = tmp_path / "pair.json"
    cmd = [
        sys.executable, "bench/pair.py", "--pair", "nometrics,ours-metrics", "-n", "2",
        "--rounds", "2", "--duration", "8", "--ramp", "1", "--warmup-s", "3",
        "--input", str(tmp_path / "input.flv"), "--json", str(out),
    ]  # fmt: skip
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=SMOKE_TIMEOUT_S)
    assert r.returncode == 0, r.stderr[-2000:]
    rounds = json.loads(out.read_text())["rounds"]
    assert [x["started_first"] for x in rounds] == ["nometrics", "ours-metrics"]
    for x in rounds:
        assert x["nometrics"] > 0 and x["ours-metrics"] > 0, x
    assert "ours-metrics against nometrics, 2 publishers each, 2 rounds:" in r.stdout
