#!/usr/bin/env python3
"""What metrics cost at N publishers, by accounting: the CPU time of every metrics code path,
at the rate a service of N publishers runs it, against the server's CPU at N.

    python bench/metrics_cost.py [--publishers 200] [--frag-duration 5] [--scrape-interval 1]
        [--server-cpu-cores 0.518]

A side-by-side run (`run_bench.py --servers nometrics,ours-metrics`) measures the same thing
end to end, but on a shared or busy machine its noise (several %) is larger than the effect;
this counts only the metrics work, with `time.process_time` (CPU time, not wall time), so a
busy machine hardly moves it. Per segment: the timed storage puts (segment, playlist), the
timed store call (index), the segment counters and histograms, the playlist-latency
histogram; per second: the timed heartbeat and kick polls, the lag probe; per scrape: the
whole exposition of a registry holding what such a service holds, with N live connections
read for the scrape-time figures. `--server-cpu-cores` is the server's own CPU at N with
metrics off (docs/performance.md: 25.9 % of 2 cores at 200 = 0.518).
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from prometheus_client import generate_latest

from livechannel.ops import metrics
from livechannel.ops.metrics import LiveFigures, TimedStorage, TimedStore

ROUNDS = 2000  # segments simulated per measurement (and scrapes: ROUNDS // 20)
STORE_OPERATIONS = (
    "ensure_bucket", "get_bucket", "get_channel", "start_push", "heartbeat_many",
    "running_pushes", "add_segment", "end_push", "live_push", "last_segments", "history",
    "list_channels", "running_workers", "close_stale_pushes", "heartbeat",
)  # fmt: skip
HTTP_OPERATIONS = ("GetObject", "HeadObject", "PutLiveChannel", "GetLiveChannelStat", "Metrics")


class _Nothing:
    """A storage and a store that do nothing: only the wrappers' own work is timed."""

    async def put(self, key: str, data: Any, content_type: str) -> None:
        return None

    async def add_segment(self, segment: object) -> None:
        return None

    async def heartbeat_many(self, beats: object, now: int) -> dict[int, bool]:
        return {}

    async def running_pushes(self, ids: object) -> dict[int, bool]:
        return {}


def populate() -> None:
    """The label sets a running service has (what a scrape renders)."""
    for op in STORE_OPERATIONS:
        metrics.STORE_SECONDS.labels(op).observe(0.001)
    for op in HTTP_OPERATIONS:
        metrics.HTTP_REQUESTS.labels(op, "200").inc()
        metrics.HTTP_SECONDS.labels(op).observe(0.002)
    metrics.PUBLISHES.labels("accepted", "").inc()
    metrics.SNAPSHOTS.labels("stored").inc()


async def per_segment_s() -> float:
    storage, store = TimedStorage(_Nothing(), "local"), TimedStore(_Nothing())
    start = time.process_time()
    for _ in range(ROUNDS):
        closed_at = time.perf_counter()
        await storage.put("cam/1.ts", b"", "video/MP2T")
        await asyncio.gather(store.add_segment(None), storage.put("cam/p.m3u8", b"", "x"))
        metrics.PLAYLIST_SECONDS.observe(time.perf_counter() - closed_at)
        metrics.SEGMENTS.inc()
        metrics.SEGMENT_SECONDS.observe(5.0)
    # Without the metrics: the same awaits on the bare objects.
    bare = _Nothing()
    base_start = time.process_time()
    for _ in range(ROUNDS):
        await bare.put("cam/1.ts", b"", "video/MP2T")
        await asyncio.gather(bare.add_segment(None), bare.put("cam/p.m3u8", b"", "x"))
    base = time.process_time() - base_start
    return max(0.0, (base_start - start) - base) / ROUNDS


async def per_second_s() -> float:
    """The heartbeat (1/s) and kick polls (3/s) through the timed store; the lag probe."""
    store = TimedStore(_Nothing())
    start = time.process_time()
    for _ in range(ROUNDS):
        await store.heartbeat_many([], 0)
        for _ in range(3):
            await store.running_pushes([])
        for _ in range(2):
            metrics.EVENT_LOOP_LAG.set(0.001)
    return (time.process_time() - start) / ROUNDS


def per_scrape_s(publishers: int) -> float:
    received = list(range(publishers))

    def live() -> LiveFigures:  # what IngestServer.live_figures reads: one int a connection
        return LiveFigures(publishers, publishers, sum(received), 0)

    metrics.LIVE.sources.append(live)
    try:
        rounds = max(1, ROUNDS // 20)
        start = time.process_time()
        for _ in range(rounds):
            body = generate_latest(metrics.REGISTRY)
        spent = (time.process_time() - start) / rounds
    finally:
        metrics.LIVE.sources.remove(live)
    lines = len(body.splitlines())
    print(f"  a scrape: {len(body)} bytes, {lines} lines")
    return spent


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--publishers", type=int, default=200)
    p.add_argument("--frag-duration", type=float, default=5.0, help="seconds per segment")
    p.add_argument("--scrape-interval", type=float, default=1.0, help="seconds")
    p.add_argument("--server-cpu-cores", type=float, default=0.518)
    args = p.parse_args()
    populate()
    segment_s = asyncio.run(per_segment_s())
    second_s = asyncio.run(per_second_s())
    scrape_s = per_scrape_s(args.publishers)
    segments_per_s = args.publishers / args.frag_duration
    total = segments_per_s * segment_s + second_s + scrape_s / args.scrape_interval
    print(f"  per segment: {segment_s * 1e6:.1f} µs CPU x {segments_per_s:.0f} segments/s")
    print(f"  per second (heartbeats, polls, lag probe): {second_s * 1e6:.1f} µs")
    print(f"  per scrape: {scrape_s * 1e3:.2f} ms, one every {args.scrape_interval:g} s")
    share = total / args.server_cpu_cores * 100
    print(f"metrics at {args.publishers} publishers: {total * 1e3:.2f} ms CPU per second = "
          f"{share:.2f} % of the server's {args.server_cpu_cores:.3f} cores")  # fmt: skip


if __name__ == "__main__":
    main()
