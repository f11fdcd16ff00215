#!/usr/bin/env python3
"""Two variants of ours under the same load at the same time: what a small difference costs.

    python bench/pair.py [--pair nometrics,ours-metrics] [-n 100] [--rounds 3]

run_bench.py runs servers one after the other, and on a shared machine two trials of the
same server differ by up to ~15 % (docs/performance.md): too much to see a cost of 1-2 %.
Here both servers run at once, each with its own `-n` real-time publishers from a load
generator of its own, and the CPU of each is read over the same window: what the machine does
meanwhile hits both alike. Each round starts both fresh and swaps which one starts first
(and whose load generator starts first); the result is the cost of the second variant
against the first, per round and over all rounds.

Variants: `nometrics` (metrics = false), `ours-metrics` (metrics on, /-/metrics scraped
every --scrape-interval s from this process), `ours` (metrics on, not scraped), `base`
(ours from --base-tree: a change against the version before it), `llhls` and `base-llhls`
(the same two with LL-HLS, --part-duration-s parts; --ll-followers of their channels are
followed by blocking reloads over the window, bench/ll_probe.py, and the answers' delays after
each part was complete are printed too).
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
from bench.ll_probe import LlProbe
from bench.metrics import percentile
from bench.run_bench import FRAG_COUNT, FRAG_DURATION_S, input_path
from bench.servers import OursServer, cpu_times

ROOT = Path(__file__).resolve().parent.parent
WARMUP_S = 20.0  # publishers connected, first segments cut: then the window opens
MIN_WINDOW_S = 1.0
WINDOW_END_MARGIN_S = 2.0  # closes before the first publisher stops
LOADGEN_TIMEOUT_EXTRA_S = 60.0  # duration + ramp + this, then a load generator is killed


def make(variant: str, workdir: Path, args: argparse.Namespace) -> OursServer:
    if variant == "nometrics":
        return OursServer(workdir, metrics=False)
    if variant == "ours-metrics":
        return OursServer(workdir, scrape_interval_s=args.scrape_interval)
    if variant == "ours":
        return OursServer(workdir)
    if variant == "base":
        return OursServer(workdir, tree=Path(args.base_tree))
    if variant in ("llhls", "base-llhls"):
        tree = Path(args.base_tree) if variant == "base-llhls" else None
        return OursServer(
            workdir, segment_format="fmp4", part_duration_s=args.part_duration_s, tree=tree
        )
    sys.exit(f"unknown variant {variant!r}")


def round_(variants: list[str], args: argparse.Namespace, flv: Path) -> dict[str, float]:
    """One round: both servers at once; CPU-s per stream-minute of each, by variant (and the
    p50/p99 of LL-HLS variants' blocking reload answers, as `<variant> p50`/`p99`)."""
    dirs = [Path(tempfile.mkdtemp(prefix="lcpair-")) for _ in variants]
    servers = [make(v, d, args) for v, d in zip(variants, dirs, strict=True)]
    loadgens: list[subprocess.Popen[bytes]] = []
    try:
        for i, server in enumerate(servers):
            server.start()
            names = [f"p{i}c{k}" for k in range(args.n)]
            server.create_channels(names, FRAG_DURATION_S, FRAG_COUNT)
        start = time.time()
        for i, server in enumerate(servers):
            cmd = [
                sys.executable, str(ROOT / "bench" / "loadgen.py"), "--input", str(flv),
                "--url", server.url(f"p{i}c") + "{i}", "-n", str(args.n),
                "--duration", str(args.duration), "--ramp", str(args.ramp),
                "--chunk-size", str(args.chunk_size),
                "--write-interval-ms", str(args.write_interval_ms),
            ]  # fmt: skip
            loadgens.append(subprocess.Popen(cmd, stdout=subprocess.DEVNULL))
        time.sleep(max(0.0, start + args.warmup_s - time.time()))
        probes = {
            v: LlProbe([f"http://127.0.0.1:{s.http_port}/live/p{i}c{k}/playlist.m3u8"
                        for k in range(min(args.ll_followers, args.n))])
            for i, (v, s) in enumerate(zip(variants, servers, strict=True))
            if s.part_duration_s
        }  # fmt: skip
        for probe in probes.values():
            probe.start()
        before = [cpu_times(s.pids()) for s in servers]
        window_s = args.duration - args.warmup_s - WINDOW_END_MARGIN_S
        time.sleep(window_s)
        after = [cpu_times(s.pids()) for s in servers]
        for probe in probes.values():
            probe.stop()
        stream_min = args.n * window_s / 60
        deadline = start + args.ramp + args.duration + LOADGEN_TIMEOUT_EXTRA_S
        for lg in loadgens:
            lg.wait(max(1.0, deadline - time.time()))
        result = {
            v: round(sum(a) - sum(b), 3) / stream_min
            for v, a, b in zip(variants, after, before, strict=True)
        }
        for v, probe in probes.items():
            result[f"{v} p50"] = percentile(probe.delays_ms, 0.5)
            result[f"{v} p99"] = percentile(probe.delays_ms, 0.99)
        return result
    finally:
        for lg in loadgens:
            if lg.poll() is None:
                lg.kill()
                lg.wait()
        for server in servers:
            server.stop()
        for d in dirs:
            shutil.rmtree(d, ignore_errors=True)


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--input", default=str(DEFAULT_INPUT))
    p.add_argument("--pair", default="nometrics,ours-metrics", help="first,second variant")
    p.add_argument("-n", type=int, default=100, help="real-time publishers per server")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--duration", type=float, default=60.0, help="seconds each publisher sends")
    p.add_argument("--ramp", type=float, default=5.0)
    p.add_argument("--warmup-s", type=float, default=WARMUP_S, help="the window opens here")
    p.add_argument("--chunk-size", type=int, default=65536, help="what the server announces")
    p.add_argument("--write-interval-ms", type=float, default=20.0)
    p.add_argument("--scrape-interval", type=float, default=1.0, help="for ours-metrics")
    p.add_argument("--base-tree", default=None, help="a checkout of livechannel, for `base`")
    p.add_argument("--part-duration-s", type=float, default=0.5, help="for the LL-HLS variants")
    p.add_argument("--ll-followers", type=int, default=8, help="LL-HLS channels followed, each")
    p.add_argument("--json", default=None, help="also write the rounds here")
    args = p.parse_args()
    if args.duration - args.warmup_s - WINDOW_END_MARGIN_S < MIN_WINDOW_S:
        p.error("--duration leaves no window after the warm-up")
    flv = input_path(args)
    first, second = args.pair.split(",")
    rounds = []
    for r in range(args.rounds):
        order = [first, second] if r % 2 == 0 else [second, first]
        result = round_(order, args, flv)
        cost = result[second] / result[first] - 1
        rounds.append({"started_first": order[0], **result, "cost": round(cost, 4)})
        reloads = "".join(
            f"; {v} reloads p50 {result[f'{v} p50']:.1f} ms, p99 {result[f'{v} p99']:.1f} ms"
            for v in (first, second)
            if f"{v} p99" in result
        )
        print(
            f"round {r + 1} ({order[0]} first): {first} {result[first]:.4f}, "
            f"{second} {result[second]:.4f} CPU-s per stream-min: {cost * 100:+.1f} %{reloads}",
            flush=True,
        )
    total_first = sum(r[first] for r in rounds)
    total_second = sum(r[second] for r in rounds)
    costs = sorted(r["cost"] for r in rounds)
    print(
        f"{second} against {first}, {args.n} publishers each, {args.rounds} rounds: "
        f"{(total_second / total_first - 1) * 100:+.1f} % over all rounds "
        f"(rounds {', '.join(f'{c * 100:+.1f}' for c in costs)} %)"
    )
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "rounds": rounds}, indent=1))


if __name__ == "__main__":
    main()
