"""How much PostgreSQL one publisher costs, and how many publishers one PostgreSQL carries.

Two measurements, each against a PostgreSQL of its own (tests/support/postgres.py) with
durable settings (fsync, synchronous_commit on):

count  The real service (in-process, --store postgresql://) with P real ffmpeg publishers:
       pg_stat_statements counts every statement PostgreSQL ran for S seconds; printed per
       worker per minute (the fixed cost) and per publisher per minute.
load   Our real queries through PostgresStore, without media: W simulated workers, each
       heartbeating its pushes once a second in one statement, every push adding a segment
       row every FRAG_S; stepped up in pushes. Per step: the statement rate achieved against
       the rate asked, latencies, and PostgreSQL's own CPU time (its processes' utime+stime
       from /proc), from which the publishers per PostgreSQL core follow.

    python -m bench.pg_capacity count --publishers 4 --seconds 60
    python -m bench.pg_capacity load --steps 250,500,1000,2000 --seconds 12 --workers 4
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import time
from pathlib import Path

from livechannel.store.base import Acl, ChannelConfig, Segment
from livechannel.store.postgres import PostgresStore
from tests.support import publishers
from tests.support.postgres import PostgresServer, start_postgres
from tests.support.service import BUCKET, ServiceThread, create_channel

DURABLE = ("fsync=on", "synchronous_commit=on", "full_page_writes=on")
FRAG_S = 2.0  # a 2 s FragDuration: 30 segment rows per publisher per minute
HEARTBEAT_S = 1.0  # livechannel.fleet.registry.HEARTBEAT_INTERVAL_S
CLK_TCK = os.sysconf("SC_CLK_TCK")


def postgres_cpu_s(server: PostgresServer) -> float:
    """CPU seconds (user + system) of the postmaster and all its children so far."""
    assert server.process is not None
    root = server.process.pid
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid, ppid = int(entry.name), int(fields[1])
        if pid == root or ppid == root:
            total += (int(fields[11]) + int(fields[12])) / CLK_TCK
    return total


# --- count ------------------------------------------------------------------------------------
def count(publisher_count: int, seconds: float) -> None:
    server = start_postgres(settings=(*DURABLE, "shared_preload_libraries=pg_stat_statements"))
    tmp = Path(server.root.parent, f"lc-count-{os.getpid()}")
    procs = []
    try:
        db = server.new_database()
        server.psql("CREATE EXTENSION pg_stat_statements", db)
        with ServiceThread(tmp, store=server.url(db)) as svc:
            svc.start()
            bucket = svc.bucket()
            for i in range(publisher_count):
                create_channel(bucket, f"c{i}", frag_duration=int(FRAG_S), frag_count=3)
            for i in range(publisher_count):
                cmd = publishers.ffmpeg_live(
                    svc.signed_publish_url(f"c{i}"), duration_s=seconds + 30, size="320x180",
                    fps=25, gop_s=FRAG_S, audio=True,
                )  # fmt: skip
                procs.append(publishers.start(cmd))
            deadline = time.monotonic() + 30
            while len(server.psql("SELECT 1 FROM pushes WHERE end_ms IS NULL", db).split()) < (
                publisher_count
            ):
                assert time.monotonic() < deadline, "publishers did not all go live"
                time.sleep(0.2)
            time.sleep(5)  # past start-up: steady state only
            server.psql("SELECT pg_stat_statements_reset()", db)
            time.sleep(seconds)
            rows = server.psql(
                "SELECT calls, rows, regexp_replace(left(query, 90), '\\s+', ' ', 'g') "
                "FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid "
                f"WHERE d.datname = '{db}' AND query NOT LIKE '%pg_stat_statements%' "
                "ORDER BY calls DESC",
                db,
            )
            for proc in procs:
                publishers.stop(proc)
            for i in range(publisher_count):
                svc.wait_idle(f"c{i}")  # pushes ended before the service stops
    finally:
        for proc in procs:
            publishers.stop(proc)
        server.destroy()
    minutes = seconds / 60
    total = 0
    print(f"{publisher_count} publishers, {seconds:.0f} s, FragDuration {FRAG_S:.0f} s, 1 worker")
    print(f"{'calls/min':>9} {'rows/min':>9}  statement")
    for line in rows.splitlines():
        calls, nrows, query = line.split("|", 2)
        total += int(calls)
        print(f"{int(calls) / minutes:9.1f} {int(nrows) / minutes:9.1f}  {query}")
    print(f"total: {total / minutes:.1f} statements/min for {publisher_count} publishers")


# --- load -------------------------------------------------------------------------------------
async def _load_step(store: PostgresStore, pushes: list[int], workers: int, seconds: float):  # type: ignore[no-untyped-def]
    beat_ms: list[float] = []
    seg_ms: list[float] = []
    asked = done = 0
    seqs = dict.fromkeys(pushes, 0)
    stop_at = time.monotonic() + seconds
    share = [pushes[i::workers] for i in range(workers)]

    async def worker(mine: list[int]) -> None:
        nonlocal asked, done
        next_beat = time.monotonic()
        # each push adds a row every FRAG_S, spread evenly over the interval
        offsets = {p: random.uniform(0, FRAG_S) for p in mine}
        start = time.monotonic()
        pending: set[asyncio.Task[None]] = set()

        async def add(push_id: int) -> None:
            nonlocal done
            seq = seqs[push_id]
            seqs[push_id] += 1
            t0 = time.perf_counter()
            await store.add_segment(
                Segment(BUCKET, f"c{push_id}", seq, f"c{push_id}/{seq}.ts", seq * 2000, 2000,
                        500_000, push_id, seq == 0)
            )  # fmt: skip
            seg_ms.append((time.perf_counter() - t0) * 1000)
            done += 1

        due = {p: start + offsets[p] for p in mine}
        while time.monotonic() < stop_at:
            now = time.monotonic()
            if now >= next_beat:
                t0 = time.perf_counter()
                await store.heartbeat_many([(p, '{"v":1}') for p in mine], int(time.time() * 1000))
                beat_ms.append((time.perf_counter() - t0) * 1000)
                next_beat += HEARTBEAT_S
            for p in mine:
                if due[p] <= now:
                    due[p] += FRAG_S
                    asked += 1
                    task = asyncio.create_task(add(p))
                    pending.add(task)
                    task.add_done_callback(pending.discard)
            await asyncio.sleep(0.01)
        if pending:
            await asyncio.wait(pending, timeout=10)

    await asyncio.gather(*(worker(m) for m in share))
    return asked, done, beat_ms, seg_ms


async def _load(server: PostgresServer, steps: list[int], workers: int, seconds: float) -> None:
    store = await PostgresStore.open(server.url(server.new_database()))
    try:
        await store.ensure_bucket(BUCKET, Acl.PRIVATE, 1)
        made: list[int] = []
        print(f"{'pushes':>6} {'seg/s asked':>11} {'seg/s done':>10} {'beat p50/p99 ms':>16} "
              f"{'seg p50/p99 ms':>15} {'PG CPU %':>8} {'pushes per PG core':>18}")  # fmt: skip
        for target in steps:
            while len(made) < target:
                name = f"c{len(made)}"
                await store.put_channel(BUCKET, name, ChannelConfig(), 1)
                push = await store.start_push(BUCKET, name, "10.0.0.1:1", "w", 1)
                made.append(push.push_id)
            cpu0, t0 = postgres_cpu_s(server), time.monotonic()
            asked, done, beats, segs = await _load_step(store, made, workers, seconds)
            cpu_s, wall_s = postgres_cpu_s(server) - cpu0, time.monotonic() - t0
            pg_share = cpu_s / wall_s
            per_core = target / pg_share if pg_share else float("inf")
            print(
                f"{target:6d} {asked / wall_s:11.0f} {done / wall_s:10.0f} "
                f"{_pct(beats, 50):7.1f}/{_pct(beats, 99):<8.1f} "
                f"{_pct(segs, 50):6.1f}/{_pct(segs, 99):<8.1f} {pg_share * 100:8.0f} "
                f"{per_core:18.0f}"
            )
    finally:
        await store.close()


def _pct(values: list[float], q: int) -> float:
    if not values:
        return float("nan")
    if len(values) < 2:
        return values[0]
    return statistics.quantiles(values, n=100)[q - 1] if q < 100 else max(values)


def main() -> None:
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="mode", required=True)
    c = sub.add_parser("count")
    c.add_argument("--publishers", type=int, default=4)
    c.add_argument("--seconds", type=float, default=60)
    lo = sub.add_parser("load")
    lo.add_argument("--steps", default="250,500,1000,2000")
    lo.add_argument("--seconds", type=float, default=12)
    lo.add_argument("--workers", type=int, default=4)
    args = p.parse_args()
    if args.mode == "count":
        count(args.publishers, args.seconds)
        return
    server = start_postgres(settings=DURABLE)
    try:
        steps = [int(x) for x in args.steps.split(",")]
        asyncio.run(_load(server, steps, args.workers, args.seconds))
    finally:
        server.destroy()


if __name__ == "__main__":
    main()
