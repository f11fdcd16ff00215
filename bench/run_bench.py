#!/usr/bin/env python3
"""Benchmark: livechannel vs nginx-rtmp, side by side, one invocation (~45-55 minutes).

    python bench/run_bench.py                       # the full run; prints the markdown table
    python bench/run_bench.py --update-docs         # ... and puts it into docs/performance.md
    python bench/run_bench.py --ns 1,50 --no-capacity --no-unpaced   # a quick look

For each N in --ns, N real-time publishers (bench/loadgen.py) replay the same FLV into ours
(`--workers 1`) and then into nginx-rtmp (one worker), each on a fresh server. Then one
unpaced publisher per server (MB/s per core), then, per server, the largest on-time N with
one worker and with two (a short search each, all bounded by --budget-s). Every run is
bounded: trials have fixed lengths and the servers are stopped by PID. Needs: nginx +
libnginx-mod-rtmp (apt-get install nginx libnginx-mod-rtmp) for the comparison; PyAV to make
the input.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import cpu_cap, loadgen, page_cache
from bench.chunkplan import DEFAULT_INPUT, load_flv
from bench.ll_probe import LlProbe
from bench.metrics import TrialResult, analyse_publishers
from bench.report import CAPACITY_STEP, capacity_lines, markdown, update_docs
from bench.servers import NginxServer, OursServer, Server, cpu_times, rss_bytes, version_of
from bench.watch import PlaylistWatcher

ROOT = Path(__file__).resolve().parent.parent
FRAG_DURATION_S, FRAG_COUNT = 5, 3  # the configuration (hls_fragment 5s, 15 s list)
SETTLE_S = 2.0  # after the ramp, before the CPU window opens (last publishers connecting)
# A server's first minute under load is not its steady state: the page cache fills from free
# memory (on a VM, each new page a host fault) and the kernel's first writeback burst comes
# after ~35 s (docs/performance.md). The CPU window opens this long after the first publisher
# starts.
WARMUP_S = 60.0
WINDOW_END_MARGIN_S = 1.0  # the window closes before the first publisher stops
FLUSH_WAIT_S = 3.0  # after the load generator exits: last segments and playlists land
RSS_SAMPLE_S = 0.5
LOADGEN_TIMEOUT_EXTRA_S = 60.0  # ramp + duration + this, then the trial is abandoned
UNPACED_S = 8.0  # one publisher as fast as the server reads; ~1 GB through the disk
CAPACITY_TRIALS = 4  # per worker count: a bracket search, not an exhaustive one
SYSCTL_VM = Path("/proc/sys/vm")
WRITEBACK_SYSCTLS = ("dirty_background_bytes", "dirty_background_ratio")
TRIAL_OVERHEAD_S = 12.0  # server start, channel creation, flush, stop (for the budget)


def round_up(n: int, step: int) -> int:
    return -(-n // step) * step


def window_opens_s(ramp_s: float, warmup_s: float) -> float:
    """Seconds after the first publisher starts when the CPU window of a paced trial opens."""
    return max(ramp_s + SETTLE_S, warmup_s)


def input_path(args: argparse.Namespace) -> Path:
    path = Path(args.input)
    if not path.exists():
        from samples.make_sample import SampleSpec, make_sample

        print(f"making the input {path} (30 s 720p30, 2 s GOP, B-frames, AAC)", file=sys.stderr)
        make_sample(path, SampleSpec(duration_s=30.0))
    return path


@dataclass(frozen=True, slots=True)
class Cell:
    """How the publishers send and what state the page cache is in (one cell of the matrix)."""

    chunk_size: int = 0  # 0: the size the server announces (what libavformat then sends)
    write_interval_ms: float = loadgen.WRITE_INTERVAL_MS
    regime: str = "asis"


def cells(args: argparse.Namespace) -> list[Cell]:
    sizes = [0 if s == "server" else int(s) for s in args.chunk_size.split(",")]
    intervals = [float(x) for x in args.write_interval_ms.split(",")]
    regimes = args.page_cache.split(",")
    for regime in regimes:
        if regime not in page_cache.REGIMES:
            sys.exit(f"--page-cache: {regime!r} is not one of {', '.join(page_cache.REGIMES)}")
    return [Cell(c, w, r) for r in regimes for c in sizes for w in intervals]


def run_trial(
    make: Callable[[Path], Server],
    n: int,
    args: argparse.Namespace,
    flv: Path,
    speed: float = 1,
    cell: Cell = Cell(),
) -> TrialResult:
    workdir = Path(tempfile.mkdtemp(prefix="lcbench-", dir=args.workdir))
    server = make(workdir)
    result = TrialResult(server.name, n, cores=os.cpu_count() or 1)
    result.chunk_size = cell.chunk_size or server.chunk_size
    result.chunk_label = str(cell.chunk_size) if cell.chunk_size else "server's"
    result.write_interval_ms = cell.write_interval_ms
    result.regime = cell.regime
    cap = None
    try:
        result.regime_figures = page_cache.prepare(cell.regime, fill_dir(args))
        server.start()
        if args.cpu_per_worker:
            cap = cpu_cap.CpuCap(f"lcbench-{os.getpid()}", server.workers * args.cpu_per_worker)
            cap.add(server.pids())
        names = [f"b{n}c{i}" for i in range(n)]
        if isinstance(server, OursServer):
            server.create_channels(names, FRAG_DURATION_S, FRAG_COUNT)
        server.prepare_channels(names)
        watcher = PlaylistWatcher({c: server.segment_dir(c) for c in names}, server.playlist_name())
        watcher.start()
        probe = None
        if isinstance(server, OursServer) and server.part_duration_s and speed:
            base = f"http://127.0.0.1:{server.http_port}/live"
            probe = LlProbe([f"{base}/{c}/playlist.m3u8" for c in names[: args.ll_followers]])
            probe.start()
        pids = server.pids()
        result.baseline_rss = rss_bytes(pids)
        duration = UNPACED_S if speed == 0 else args.duration
        ramp = 0.0 if n == 1 else args.ramp
        report_path = workdir / "loadgen.json"
        cmd = [
            sys.executable, str(ROOT / "bench" / "loadgen.py"), "--input", str(flv),
            "--url", server.url(f"b{n}c") + "{i}", "-n", str(n), "--duration", str(duration),
            "--speed", str(speed), "--ramp", str(ramp), "--chunk-size", str(result.chunk_size),
            "--write-interval-ms", str(cell.write_interval_ms), "--json", str(report_path),
        ]  # fmt: skip
        start = time.time()
        loadgen = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        if speed == 0:
            window = (start, start + duration + FLUSH_WAIT_S)
        else:
            window = (
                start + window_opens_s(ramp, args.warmup_s),
                start + duration - WINDOW_END_MARGIN_S,
            )
        cpu0 = cpu1 = None
        deadline = start + ramp + duration + LOADGEN_TIMEOUT_EXTRA_S
        while time.time() < deadline:
            now = time.time()
            if cpu0 is None and now >= window[0]:
                cpu0 = cpu_times(pids)
            if cpu1 is None and now >= window[1]:
                cpu1 = cpu_times(pids)
                result.window_s = now - window[0]
            result.peak_rss = max(result.peak_rss, rss_bytes(pids))
            if loadgen.poll() is not None and cpu1 is not None:
                break
            time.sleep(RSS_SAMPLE_S)
        if loadgen.poll() is None:
            loadgen.kill()
            result.errors.append("load generator did not finish in time")
        _, err = loadgen.communicate()
        time.sleep(FLUSH_WAIT_S)
        if cpu0 is not None and cpu1 is not None:
            result.cpu_user_s = cpu1[0] - cpu0[0]
            result.cpu_sys_s = cpu1[1] - cpu0[1]
            result.cpu_s = result.cpu_user_s + result.cpu_sys_s
        result.peak_rss = max(result.peak_rss, rss_bytes(pids))
        watcher.stop()
        if probe is not None:
            probe.stop()
            result.part_answer_ms = probe.delays_ms
            result.errors += probe.errors[:3]
        if not report_path.exists():
            result.errors.append(f"no load generator report: {err.decode()[-300:]}")
            return result
        report = json.loads(report_path.read_text())
        result.loadgen_cpu_s = report["cpu_s"]
        result.loadgen_wall_s = report["wall_s"]
        result.bytes_sent = report["bytes_sent"]
        result.send_s = max((p["end"] - p["start"] for p in report["publishers"]), default=0)
        written = {c: sum(1 for f in server.segment_dir(c).iterdir()
                          if f.suffix in (".ts", ".m4s")) for c in names}  # fmt: skip
        result.snapshots = sum(1 for c in names for _ in server.segment_dir(c).glob("*.jpg"))
        analyse_publishers(result, report["publishers"], watcher.channels, written,
                           FRAG_DURATION_S * 1000)  # fmt: skip
        return result
    except Exception as e:  # a broken trial is a row with an error, not a lost run
        result.errors.append(f"trial failed: {type(e).__name__}: {e}")
        return result
    finally:
        server.stop()
        if cap is not None:
            cap.close()
        shutil.rmtree(workdir, ignore_errors=True)


def fill_dir(args: argparse.Namespace) -> Path:
    """Where the "full" regime's sparse file lives: a disk filesystem, not tmpfs."""
    return Path(args.workdir or tempfile.gettempdir())


def capacity(
    make: Callable[[Path], Server],
    args: argparse.Namespace,
    flv: Path,
    known: dict[int, bool],
    start_n: int,
    floor_n: int,
    budget_ok: Callable[[], bool],
) -> tuple[int, int | None, list[TrialResult]]:
    """(largest N seen on time, smallest N seen late or None, trials run): a bracket search
    from `start_n` (or the middle of what `known` brackets). `floor_n` only steers where to
    look after a first late trial; the counts returned were all measured."""
    ok = max((n for n, good in known.items() if good), default=0)
    bad = min((n for n, good in known.items() if not good), default=None)
    trials: list[TrialResult] = []
    n = (ok + bad) // 2 if bad is not None else max(start_n, ok * 5 // 4)
    for _ in range(CAPACITY_TRIALS):
        n = max(CAPACITY_STEP, round(n / CAPACITY_STEP) * CAPACITY_STEP)
        if n <= ok or (bad is not None and n >= bad) or not budget_ok():
            break
        trial = run_trial(make, n, args, flv)
        trials.append(trial)
        print(json.dumps(trial.summary()), file=sys.stderr)
        if trial.on_time:
            ok = n
        else:
            bad = n
        low = max(ok, floor_n if not ok else 0)
        n = (low + bad) // 2 if bad is not None else ok * 5 // 4
    return ok, bad, trials


def machine() -> dict[str, str]:
    cpu = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mod = version_of(["dpkg-query", "-W", "-f=${Version}", "libnginx-mod-rtmp"])
    commit = version_of(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"])
    import uvloop

    return {
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
        "cpu": f"{cpu}, {os.cpu_count()} cores",
        "kernel": platform.release(),
        "python": platform.python_version() + f", uvloop {uvloop.__version__}",
        "livechannel": f"git {commit}",
        "nginx": version_of(["nginx", "-v"]) + f", libnginx-mod-rtmp {mod}",
        "writeback": ", ".join(
            f"vm.{name} = {(SYSCTL_VM / name).read_text().strip()}" for name in WRITEBACK_SYSCTLS
        ),
    }


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--input", default=str(DEFAULT_INPUT))
    p.add_argument("--ns", default="1,50,100,200,400", help="real-time publisher counts")
    p.add_argument("--duration", type=float, default=90.0, help="seconds each publisher sends")
    p.add_argument(
        "--warmup-s", type=float, default=WARMUP_S, help="CPU is counted from here to the end"
    )
    p.add_argument("--ramp", type=float, default=5.0, help="seconds over which publishers start")
    p.add_argument(
        "--servers",
        default="ours,nginx",
        help="of ours, nginx, snap (ours with snapshots), buffered (ours, direct_io = false), "
        "nometrics (ours, metrics = false), ours-metrics (ours, /-/metrics scraped every "
        "--scrape-interval s): compare the last two for what metrics cost; "
        "fmp4 (ours, fMP4 segments), llhls (ours, fMP4 with LL-HLS parts), "
        "base (ours as checked out in --base-tree: a change against the version before it), "
        "base-llhls (llhls as checked out in --base-tree)",
    )
    p.add_argument(
        "--paced-workers",
        default="1",
        help="worker processes of ours in the paced trials, e.g. 1,2 (each row says which)",
    )
    p.add_argument("--base-tree", default=None, help="a checkout of livechannel, for `base`")
    p.add_argument("--part-duration-s", type=float, default=0.5, help="LL-HLS parts, for `llhls`")
    p.add_argument(
        "--ll-followers", type=int, default=8, help="`llhls`: channels followed by blocking reloads"
    )
    p.add_argument("--snapshot-interval", type=int, default=1, help="seconds, for `snap`")
    p.add_argument("--scrape-interval", type=float, default=1.0, help="seconds, for `ours-metrics`")
    p.add_argument(
        "--cpu-per-worker",
        type=float,
        default=0,
        help="hold each server to this many cores per worker (a cgroup quota; root)",
    )
    p.add_argument(
        "--chunk-size",
        default="server",
        help="publishers' RTMP chunk sizes, e.g. 128,4096,server (server: what it announces)",
    )
    p.add_argument(
        "--write-interval-ms",
        default=str(loadgen.WRITE_INTERVAL_MS),
        help="how often each paced publisher writes, e.g. 10,20,33",
    )
    p.add_argument(
        "--page-cache",
        default="asis",
        help="page-cache regimes before each trial: asis, cold, full (bench/page_cache.py; root)",
    )
    p.add_argument("--no-unpaced", action="store_true")
    p.add_argument("--no-capacity", action="store_true")
    p.add_argument("--budget-s", type=float, default=3300.0, help="capacity search stops here")
    p.add_argument("--workdir", default=None, help="where servers write (default: temp)")
    p.add_argument("--json", default=None, help="also write all results here")
    p.add_argument("--update-docs", action="store_true", help="write docs/performance.md")
    p.add_argument(
        "--dirty-background-bytes",
        type=int,
        default=0,
        help="set vm.dirty_background_bytes for this run (root; restored after)",
    )
    args = p.parse_args()
    if window_opens_s(args.ramp, args.warmup_s) >= args.duration - WINDOW_END_MARGIN_S:
        p.error("--warmup-s (and --ramp) must leave a CPU window before --duration ends")
    with writeback(args.dirty_background_bytes):
        run(args)


@contextlib.contextmanager
def writeback(background_bytes: int) -> Iterator[None]:
    """Start the kernel's writeback at `background_bytes` of dirty data instead of 10 % of
    RAM (~2.3 GB here): writes then go to disk in a steady stream, not in bursts that stall
    the servers' writers (docs/performance.md, "Sizing a box"). 0: leave it as it is."""
    if not background_bytes:
        yield
        return
    saved = {name: (SYSCTL_VM / name).read_text() for name in WRITEBACK_SYSCTLS}
    try:
        (SYSCTL_VM / "dirty_background_bytes").write_text(str(background_bytes))
    except PermissionError:
        sys.exit("--dirty-background-bytes writes /proc/sys/vm: run the benchmark as root")
    try:
        yield
    finally:  # the kernel keeps only one of the pair: restore the one that was set
        bytes_name, ratio_name = WRITEBACK_SYSCTLS
        if int(saved[bytes_name]):
            (SYSCTL_VM / bytes_name).write_text(saved[bytes_name])
        else:
            (SYSCTL_VM / ratio_name).write_text(saved[ratio_name])


def run(args: argparse.Namespace) -> None:
    t0 = time.time()
    flv = input_path(args)
    info = load_flv(flv)
    servers = args.servers.split(",")
    if args.cpu_per_worker and not cpu_cap.available():
        sys.exit("--cpu-per-worker needs root and a cgroup cpu controller (v2, or v1's cpu)")
    if any(name.startswith("base") for name in servers) and not args.base_tree:
        sys.exit("`base` runs ours from --base-tree: name a checkout")
    if "nginx" in servers and not NginxServer.available():
        print("nginx with libnginx-mod-rtmp not found: comparing nothing", file=sys.stderr)
        servers.remove("nginx")
    makers: dict[str, Callable[[int], Callable[[Path], Server]]] = {
        "ours": lambda workers: lambda d: OursServer(d, workers),
        "nginx": lambda workers: lambda d: NginxServer(d, FRAG_DURATION_S, FRAG_COUNT, workers),
        "snap": lambda workers: lambda d: OursServer(d, workers, args.snapshot_interval),
        "buffered": lambda workers: lambda d: OursServer(d, workers, direct_io=False),
        "nometrics": lambda workers: lambda d: OursServer(d, workers, metrics=False),
        "ours-metrics": lambda workers: (
            lambda d: OursServer(d, workers, scrape_interval_s=args.scrape_interval)
        ),
        "fmp4": lambda workers: lambda d: OursServer(d, workers, segment_format="fmp4"),
        "base": lambda workers: lambda d: OursServer(d, workers, tree=Path(args.base_tree)),
        "llhls": lambda workers: (
            lambda d: OursServer(
                d, workers, segment_format="fmp4", part_duration_s=args.part_duration_s
            )
        ),
        "base-llhls": lambda workers: (
            lambda d: OursServer(
                d,
                workers,
                segment_format="fmp4",
                part_duration_s=args.part_duration_s,
                tree=Path(args.base_tree),
            )
        ),
    }
    matrix = cells(args)
    if any(c.regime != "asis" for c in matrix) and not page_cache.available():
        sys.exit("--page-cache cold/full writes /proc/sys/vm/drop_caches: run as root")
    paced: list[TrialResult] = []
    on_time: dict[str, dict[int, bool]] = {name: {} for name in servers}  # by server, by N
    try:
        for cell in matrix:
            for n in (int(x) for x in args.ns.split(",")):
                for workers in (int(x) for x in args.paced_workers.split(",")):
                    for name in servers:
                        trial = run_trial(makers[name](workers), n, args, flv, cell=cell)
                        paced.append(trial)
                        if cell == matrix[0] and workers == 1:
                            on_time[name][n] = trial.on_time
                        print(json.dumps(trial.summary()), file=sys.stderr)
    finally:
        page_cache.release(fill_dir(args))
    unpaced = []
    if not args.no_unpaced:
        for name in servers:
            trial = run_trial(makers[name](1), 1, args, flv, speed=0)
            unpaced.append(trial)
            print(json.dumps(trial.summary()), file=sys.stderr)

    def budget_ok() -> bool:
        return time.time() - t0 + args.duration + args.ramp + TRIAL_OVERHEAD_S < args.budget_s

    capacities: dict[str, dict[int, tuple[int, int | None]]] = {}
    for name in [] if args.no_capacity else servers:
        # Start where the paced runs left off, then look for two workers around 1.7 times one.
        ok1, bad1, _ = capacity(makers[name](1), args, flv, on_time[name], 200, 0, budget_ok)
        start2 = round_up(-(-ok1 * 17 // 10), CAPACITY_STEP)  # 1.7 times, rounded up
        ok2, bad2, _ = capacity(makers[name](2), args, flv, {}, start2, ok1, budget_ok)
        capacities[name] = {1: (ok1, bad1), 2: (ok2, bad2)}
    command = " ".join(["python", "bench/run_bench.py", *sys.argv[1:]])
    opens_s = window_opens_s(args.ramp, args.warmup_s)
    trials = (
        f"- Trials: each publisher sends for {args.duration:.0f} s (all started within "
        f"{args.ramp:.0f} s); server CPU is counted from {opens_s:.0f} s to "
        f"{args.duration - WINDOW_END_MARGIN_S:.0f} s, after the warm-up (`--warmup-s`)."
    )
    if args.cpu_per_worker:
        trials += (
            f" Each server's processes were held to {args.cpu_per_worker:g} cores per worker "
            "(one cgroup CPU quota per server, `--cpu-per-worker`); the load generator was not."
        )
    show_matrix = len(matrix) > 1 or matrix[0] != Cell()
    if show_matrix:
        trials += (
            " Publishers' chunk sizes, write intervals and page-cache regimes as in each row"
            " (`--chunk-size`, `--write-interval-ms`, `--page-cache`; bench/page_cache.py)."
        )
    text = markdown(
        machine(),
        info,
        paced,
        unpaced,
        capacity_lines(capacities),
        time.time() - t0,
        command,
        trials,
        matrix=show_matrix,
    )
    print(text)
    if args.json:
        Path(args.json).write_text(json.dumps({
            "paced": [t.summary() for t in paced], "unpaced": [t.summary() for t in unpaced],
            "capacity": capacities,
        }, indent=1))  # fmt: skip
    if args.update_docs:
        update_docs(ROOT / "docs" / "performance.md", text)


if __name__ == "__main__":
    main()
