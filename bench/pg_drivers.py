"""psycopg 3 (with psycopg_pool) against asyncpg, on the statements the metadata store runs.

Starts its own PostgreSQL (tests/support/postgres.py), runs the same bounded loop of our real
statement shapes through each driver side by side, alternating, and prints per-statement wall
time and the client process's CPU time per statement (what an ingest node pays).

    python -m bench.pg_drivers [--ops 2000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Awaitable, Callable

import asyncpg  # type: ignore[import-untyped]
import psycopg_pool

from tests.support.postgres import start_postgres

SCHEMA = """
CREATE TABLE IF NOT EXISTS segments (
    bucket TEXT NOT NULL, channel TEXT NOT NULL, seq BIGINT NOT NULL, key TEXT NOT NULL,
    start_ms BIGINT NOT NULL, duration_ms BIGINT NOT NULL, size BIGINT NOT NULL,
    push_id BIGINT NOT NULL, discontinuity BOOLEAN NOT NULL, PRIMARY KEY (bucket, channel, seq));
CREATE TABLE IF NOT EXISTS pushes (push_id BIGINT PRIMARY KEY, heartbeat_ms BIGINT NOT NULL,
    stats_json TEXT NOT NULL, kick BOOLEAN NOT NULL DEFAULT false, end_ms BIGINT);
"""
INSERT = "INSERT INTO segments VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING"
LAST = "SELECT * FROM segments WHERE bucket = $1 AND channel = $2 ORDER BY seq DESC LIMIT $3"
BEAT = (
    "UPDATE pushes SET heartbeat_ms = $1, stats_json = b.s FROM unnest($2::bigint[], "
    "$3::text[]) AS b(i, s) WHERE push_id = b.i AND end_ms IS NULL RETURNING push_id, kick"
)
BATCH = 50  # pushes per heartbeat: one node's share


def _pg(sql: str) -> str:
    """psycopg uses %s placeholders."""
    for i in range(9, 0, -1):
        sql = sql.replace(f"${i}", "%s")
    return sql


async def run_asyncpg(url: str, ops: int, tag: str) -> dict[str, tuple[float, float]]:
    pool = await asyncpg.create_pool(url, min_size=2, max_size=4)
    out: dict[str, tuple[float, float]] = {}

    async def insert(i: int) -> None:
        await pool.execute(INSERT, "b", tag, i, f"{tag}/{i}.ts", i, 2000, 1000, 1, False)

    async def last(i: int) -> None:
        await pool.fetch(LAST, "b", tag, 3)

    async def beat(i: int) -> None:
        await pool.fetch(BEAT, i, list(range(BATCH)), ["{}"] * BATCH)

    for name, op in (("insert", insert), ("last3", last), ("beat50", beat)):
        out[name] = await _time(op, ops)
    await pool.close()
    return out


async def run_psycopg(url: str, ops: int, tag: str) -> dict[str, tuple[float, float]]:
    pool = psycopg_pool.AsyncConnectionPool(url, min_size=2, max_size=4, open=False)
    await pool.open()
    out: dict[str, tuple[float, float]] = {}

    async def insert(i: int) -> None:
        async with pool.connection() as conn:
            await conn.execute(_pg(INSERT), ("b", tag, i, f"{tag}/{i}.ts", i, 2000, 1000, 1, False))

    async def last(i: int) -> None:
        async with pool.connection() as conn:
            await (await conn.execute(_pg(LAST), ("b", tag, 3))).fetchall()

    async def beat(i: int) -> None:
        async with pool.connection() as conn:
            cur = await conn.execute(_pg(BEAT), (i, list(range(BATCH)), ["{}"] * BATCH))
            await cur.fetchall()

    for name, op in (("insert", insert), ("last3", last), ("beat50", beat)):
        out[name] = await _time(op, ops)
    await pool.close()
    return out


async def _time(op: Callable[[int], Awaitable[None]], ops: int) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    for i in range(ops):
        await op(i)
    return ((time.perf_counter() - wall) / ops * 1e6, (time.process_time() - cpu) / ops * 1e6)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--ops", type=int, default=2000)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    server = start_postgres()
    try:
        db = server.new_database()
        server.psql(SCHEMA, db)
        server.psql(
            f"INSERT INTO pushes SELECT i, 0, '{{}}' FROM generate_series(0, {BATCH - 1}) i", db
        )
        url = server.url(db)
        totals: dict[tuple[str, str], list[tuple[float, float]]] = {}
        for r in range(args.rounds):
            for driver, run in (("asyncpg", run_asyncpg), ("psycopg", run_psycopg)):
                got = asyncio.run(run(url, args.ops, f"{driver}{r}"))
                for stmt, figures in got.items():
                    totals.setdefault((driver, stmt), []).append(figures)
        print(f"{'driver':<9} {'statement':<8} {'wall us/op':>11} {'client CPU us/op':>17}")
        for (driver, stmt), runs in sorted(totals.items(), key=lambda kv: (kv[0][1], kv[0][0])):
            wall = sorted(w for w, _ in runs)[len(runs) // 2]
            cpu = sorted(c for _, c in runs)[len(runs) // 2]
            print(f"{driver:<9} {stmt:<8} {wall:>11.0f} {cpu:>17.0f}")
    finally:
        server.destroy()


if __name__ == "__main__":
    main()
