#!/usr/bin/env python3
"""Idle cost: what a process costs with many channels and few publishers (~4 minutes).

    python bench/idle.py                         # 1000 idle channels, then + 10 publishers
    python bench/idle.py --channels 1000 --publishers 10 --window-s 60 --servers ours,nginx

One fresh server (ours: `livechannel serve --workers 1`; nginx-rtmp: one worker, as in
run_bench.py). For ours, --channels channels are created (PutLiveChannel through oss2) and
left idle: created, never published to. Then the server's CPU (user + system, all its
processes and threads, from /proc) is read over two bounded windows of --window-s each:

1. idle: nothing publishing (what the process costs on its own, with its channels);
2. publishing: --publishers real-time publishers (bench/loadgen.py, the benchmark's FLV,
   a write every --write-interval-ms) into channels of their own, the window opening
   --warmup-s after they started.

It prints CPU as a share of one core for both windows, the publishers' share per publisher
in CPU-s per minute, and the server's threads' CPU in the publishing window. nginx-rtmp has
no channels to create; its idle window is the bare server.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.chunkplan import DEFAULT_INPUT
from bench.servers import CLK_TCK, NginxServer, OursServer, Server, cpu_seconds

ROOT = Path(__file__).resolve().parent.parent
FRAG_DURATION_S, FRAG_COUNT = 5, 3  # as in run_bench.py
SETTLE_S = 5.0  # after the channels are created, before the idle window opens
LOADGEN_GRACE_S = 60.0  # the load generator has this long past its duration, then is killed


def thread_cpu(pids: list[int]) -> dict[str, float]:
    """CPU seconds of the processes' main threads (the event loops) and of all other threads
    (storage, SQLite, snapshots)."""
    out = {"event loop": 0.0, "other threads": 0.0}
    for pid in pids:
        try:
            tasks = list(Path(f"/proc/{pid}/task").iterdir())
        except OSError:
            continue
        for task in tasks:
            try:
                fields = (task / "stat").read_text().rpartition(")")[2].split()
            except OSError:
                continue
            name = "event loop" if task.name == str(pid) else "other threads"
            out[name] += (int(fields[11]) + int(fields[12])) / CLK_TCK
    return out


def window(server: Server, seconds: float) -> tuple[float, dict[str, float]]:
    """(CPU seconds of the server over `seconds` of wall time, per thread name)."""
    pids = server.pids()
    threads0, cpu0, t0 = thread_cpu(pids), cpu_seconds(pids), time.monotonic()
    time.sleep(seconds)
    cpu1, wall = cpu_seconds(pids), time.monotonic() - t0
    threads1 = thread_cpu(pids)
    per_thread = {n: threads1[n] - threads0.get(n, 0.0) for n in threads1}
    return (cpu1 - cpu0) * seconds / wall, per_thread


def trial(server: Server, args: argparse.Namespace, flv: Path) -> dict[str, object]:
    result: dict[str, object] = {"server": server.name, "channels": 0}
    server.start()
    try:
        pubs = [f"pub{i}" for i in range(args.publishers)]
        if isinstance(server, OursServer):
            started = time.monotonic()
            idle = [f"idle{i}" for i in range(args.channels)]
            server.create_channels(idle + pubs, FRAG_DURATION_S, FRAG_COUNT)
            result["channels"] = args.channels
            result["create_s"] = round(time.monotonic() - started, 1)
        server.prepare_channels(pubs)
        time.sleep(SETTLE_S)
        idle_cpu, _ = window(server, args.window_s)
        result["idle_core_pct"] = round(100 * idle_cpu / args.window_s, 2)
        report = Path(tempfile.mkdtemp(prefix="lcidle-")) / "loadgen.json"
        duration = args.warmup_s + args.window_s + 2
        cmd = [
            sys.executable, str(ROOT / "bench" / "loadgen.py"), "--input", str(flv),
            "--url", server.url("pub") + "{i}", "-n", str(args.publishers),
            "--duration", str(duration), "--ramp", "1", "--chunk-size", str(server.chunk_size),
            "--write-interval-ms", str(args.write_interval_ms), "--json", str(report),
        ]  # fmt: skip
        loadgen = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            time.sleep(args.warmup_s)
            busy_cpu, threads = window(server, args.window_s)
            loadgen.wait(duration + LOADGEN_GRACE_S)
        finally:
            if loadgen.poll() is None:
                loadgen.kill()
            _, err = loadgen.communicate()
        if report.exists():
            published = json.loads(report.read_text())["publishers"]
            errors = [p["error"] for p in published if p.get("error")]
            result["publisher_errors"] = errors[:3]
        else:
            result["publisher_errors"] = [f"no load generator report: {err.decode()[-300:]}"]
        shutil.rmtree(report.parent, ignore_errors=True)
        result["publishing_core_pct"] = round(100 * busy_cpu / args.window_s, 2)
        per_min = 60 / args.window_s
        result["per_publisher_cpu_s_per_min"] = round(
            (busy_cpu - idle_cpu) * per_min / max(args.publishers, 1), 3
        )
        result["idle_cpu_s_per_min"] = round(idle_cpu * per_min, 3)
        result["threads_cpu_s"] = {n: round(c, 2) for n, c in sorted(threads.items()) if c > 0}
    finally:
        server.stop()
    return result


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--input", default=str(DEFAULT_INPUT))
    p.add_argument("--channels", type=int, default=1000, help="idle channels (ours)")
    p.add_argument("--publishers", type=int, default=10)
    p.add_argument("--window-s", type=float, default=60.0, help="each CPU window")
    p.add_argument("--warmup-s", type=float, default=15.0, help="publishers start -> window")
    p.add_argument(
        "--write-interval-ms", type=float, default=20.0, help="how often a publisher writes"
    )
    p.add_argument("--servers", default="ours", help="of ours, nginx")
    p.add_argument("--json", default=None, help="also write the results here")
    args = p.parse_args()
    flv = Path(args.input)
    if not flv.exists():
        from samples.make_sample import SampleSpec, make_sample

        make_sample(flv, SampleSpec(duration_s=30.0))
    results = []
    for name in args.servers.split(","):
        workdir = Path(tempfile.mkdtemp(prefix="lcidle-"))
        try:
            server: Server = (
                OursServer(workdir)
                if name == "ours"
                else NginxServer(workdir, FRAG_DURATION_S, FRAG_COUNT)
            )
            results.append(trial(server, args, flv))
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        print(json.dumps(results[-1]), flush=True)
    for r in results:
        print(
            f"{r['server']}: {r['channels']} idle channels: {r['idle_core_pct']} % of a core; "
            f"+ {args.publishers} publishers: {r['publishing_core_pct']} % of a core "
            f"({r['per_publisher_cpu_s_per_min']} CPU-s per publisher-minute)"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
