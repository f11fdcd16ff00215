#!/usr/bin/env python3
"""What a read costs the server, apart from what it reads: real sockets, a server on uvloop
whose protocol only counts bytes, and paced writers in another process.

    python bench/read_bench.py [--connections 100] [--write-interval-ms 10] [--seconds 15]

Each connection's writer sends `--write-bytes` (a 2.6 Mbit/s publisher's share of the
interval) every interval. Variants of the server, one after the other on fresh sockets:

- `protocol`: asyncio.Protocol, one data_received per read (what the edge is);
- `buffered`: asyncio.BufferedProtocol reading into one shared buffer (no bytes object per
  read; two Python calls per read instead of one);
- `paced`: Protocol, and each connection rests after a read (its transport paused) until a
  process-wide tick every `--pacing-ms` resumes all resting ones: fewer, larger reads, at the
  cost of a pause and a resume (epoll changes) per read. Measured and not kept in the edge;
- `lowat`: Protocol, each socket's receive low-water mark (SO_RCVLOWAT) at `--lowat-bytes`
  (default: `--pacing-ms` of the stream), so the kernel wakes the server once that much
  waits: fewer, larger reads with no epoll change. What the edge does with many publishers
  (livechannel/ingest/reads.py; docs/performance.md, "Per-chunk and per-read cost").

Printed per variant: reads per connection per second, bytes per read, the server's CPU
(user + system, from getrusage in the server process) per second and per read, and per
stream-minute for this many connections.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import resource
import socket
import time
from typing import Any, Protocol

SETTLE_S = 2.0  # connections up and writing before the CPU window opens
SHARED_BUFFER_BYTES = 256 * 1024  # uvloop's own read buffer size


class Resting(Protocol):
    def wake(self) -> None: ...


class ReadPacer:
    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self._resting: list[Resting] = []
        self._timer: asyncio.TimerHandle | None = None

    def rest(self, conn: Resting, transport: asyncio.Transport) -> None:
        """`conn` has just been read: pause its transport until the next tick."""
        transport.pause_reading()
        self._resting.append(conn)
        if self._timer is None:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(self.interval_s, self._tick)

    def _tick(self) -> None:
        resting, self._resting = self._resting, []
        self._timer = None
        for conn in resting:
            conn.wake()

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._resting.clear()


class Counting(asyncio.Protocol):
    def __init__(
        self, stats: dict[str, int], pacer: ReadPacer | None, lowat_bytes: int = 0
    ) -> None:
        self.stats, self.pacer, self.lowat_bytes = stats, pacer, lowat_bytes
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        if self.lowat_bytes:
            sock = transport.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, self.lowat_bytes)

    def data_received(self, data: bytes) -> None:
        self.stats["reads"] += 1
        self.stats["bytes"] += len(data)
        if self.pacer is not None and self.transport is not None:
            self.pacer.rest(self, self.transport)

    def wake(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()


class BufferedCounting(asyncio.BufferedProtocol):
    buffer = bytearray(SHARED_BUFFER_BYTES)
    view = memoryview(buffer)

    def __init__(self, stats: dict[str, int]) -> None:
        self.stats = stats

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.view

    def buffer_updated(self, nbytes: int) -> None:
        self.stats["reads"] += 1
        self.stats["bytes"] += nbytes


def server(
    variant: str, pacing_ms: float, lowat_bytes: int, window_s: float, port_q: Any, out_q: Any
) -> None:
    import uvloop

    async def main() -> dict[str, float]:
        stats = {"reads": 0, "bytes": 0}
        pacer = ReadPacer(pacing_ms / 1000) if variant == "paced" else None
        loop = asyncio.get_running_loop()

        def factory() -> asyncio.BaseProtocol:
            if variant == "buffered":
                return BufferedCounting(stats)
            return Counting(stats, pacer, lowat_bytes if variant == "lowat" else 0)

        srv = await loop.create_server(factory, "127.0.0.1", 0)
        port_q.put(srv.sockets[0].getsockname()[1])
        await asyncio.sleep(SETTLE_S)
        r0, s0 = resource.getrusage(resource.RUSAGE_SELF), dict(stats)
        await asyncio.sleep(window_s)
        r1, s1 = resource.getrusage(resource.RUSAGE_SELF), dict(stats)
        srv.close()
        return {
            "user_s": r1.ru_utime - r0.ru_utime,
            "sys_s": r1.ru_stime - r0.ru_stime,
            "reads": s1["reads"] - s0["reads"],
            "bytes": s1["bytes"] - s0["bytes"],
        }

    out_q.put(json.dumps(uvloop.run(main())))


def writers(port: int, n: int, interval_s: float, write_bytes: int, run_s: float) -> None:
    socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(n)]
    payload = bytes(write_bytes)
    start = time.monotonic()
    tick = 0
    while time.monotonic() - start < run_s:
        tick += 1
        delay = start + tick * interval_s - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        try:
            for s in socks:
                s.sendall(payload)
        except OSError:  # the server's window closed first
            break
    for s in socks:
        s.close()


def run_variant(variant: str, args: argparse.Namespace) -> dict[str, float]:
    ctx = multiprocessing.get_context("spawn")
    port_q, out_q = ctx.Queue(), ctx.Queue()
    proc = ctx.Process(
        target=server,
        args=(variant, args.pacing_ms, args.lowat_bytes, args.seconds, port_q, out_q),
    )
    proc.start()
    port = port_q.get(timeout=20)
    run_s = SETTLE_S + args.seconds + 1
    writer = ctx.Process(
        target=writers,
        args=(port, args.connections, args.write_interval_ms / 1000, args.write_bytes, run_s),
    )
    writer.start()
    result: dict[str, float] = json.loads(out_q.get(timeout=run_s + 30))
    writer.join(30)
    proc.join(30)
    return result


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--connections", type=int, default=100)
    p.add_argument("--write-interval-ms", type=float, default=10.0)
    p.add_argument("--write-bytes", type=int, default=0, help="default: 2.66 Mbit/s's share")
    p.add_argument("--pacing-ms", type=float, default=20.0)
    p.add_argument("--seconds", type=float, default=15.0)
    p.add_argument("--lowat-bytes", type=int, default=0, help="default: --pacing-ms of bytes")
    p.add_argument("--variants", default="protocol,buffered,paced,lowat")
    args = p.parse_args()
    if not args.write_bytes:
        args.write_bytes = round(2_660_000 / 8 * args.write_interval_ms / 1000)
    if not args.lowat_bytes:
        args.lowat_bytes = round(2_660_000 / 8 * args.pacing_ms / 1000)
    for variant in args.variants.split(","):
        r = run_variant(variant, args)
        cpu = r["user_s"] + r["sys_s"]
        per_conn_s = r["reads"] / args.connections / args.seconds
        stream_min = args.connections * args.seconds / 60
        print(
            f"{variant:9s} {per_conn_s:6.1f} reads/conn/s, {r['bytes'] / max(1, r['reads']):7.0f} "
            f"B/read, CPU {cpu / args.seconds * 100:5.1f} % of a core (user {r['user_s']:.2f} s, "
            f"sys {r['sys_s']:.2f} s), {cpu / max(1, r['reads']) * 1e6:5.1f} us/read, "
            f"{cpu / stream_min:.4f} CPU-s per stream-minute"
        )


if __name__ == "__main__":
    main()
