#!/usr/bin/env python3
"""RTMP load generator: N concurrent publishers replaying one FLV, paced or unpaced.

    python bench/loadgen.py --input in.flv --url 'rtmp://127.0.0.1:1935/live/bench{i}' \
        -n 100 --duration 30 [--speed 1 | --speed 0 (unpaced)] [--json out.json]

The FLV is parsed once and encoded once into an RTMP chunk stream (bench/chunkplan.py); every
publisher sends slices of those same bytes. The RTMP session itself (handshake, connect,
createStream, publish) is the sans-IO `ClientConnection`, so this speaks to any RTMP server.

Pacing: one timer for all publishers; every `--write-interval-ms` (20 by default) each
publisher writes the messages whose
media time has come (speed times wall time since its Publish.Start). `--speed 0` writes as fast
as the server reads (transport flow control). Publishers start staggered over `--ramp` s.
The JSON report holds the loadgen's own CPU, its pacing lateness, and per publisher the wall
time each keyframe left (the benchmark joins it with the playlists it sees in storage).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import time
from array import array
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import contextlib

from bench.chunkplan import ChunkPlan, FlvInput, PlanBuilder, build_plan, load_flv
from livechannel.rtmp.client import ClientConnection, PublishStarted, StatusReceived
from livechannel.rtmp.errors import RtmpError

# Pacing granularity: under one 33 ms frame interval, so frames leave in order. Encoders write
# each frame as it comes (33 ms at 30 fps); other load generators write every 10 ms.
WRITE_INTERVAL_MS = 20.0
HANDSHAKE_TIMEOUT_S = 15.0  # connect → Publish.Start; a loaded server may take a while
WRITE_HIGH_WATER_BYTES = 4 * 1024 * 1024  # above this, stop writing until the server reads
UNPACED_WRITE_BYTES = 1024 * 1024  # one write while unpaced: big enough to keep TCP busy
UNPACED_BLOCK_MS = 60_000  # media encoded per block while unpaced (a few MB, ~0.1 s of CPU)
UNPUBLISH_LINGER_S = 0.2  # let FCUnpublish/deleteStream reach the server before closing
CLOSE_TIMEOUT_S = 10.0  # servers close within this after we do, or we stop waiting


@dataclass(slots=True)
class PublisherReport:
    index: int
    name: str
    start_wall_s: float = 0.0  # Publish.Start received; media time 0 is due now
    end_wall_s: float = 0.0
    bytes_sent: int = 0
    error: str = ""
    keyframes: list[tuple[int, float]] = field(default_factory=list)  # (media ms, wall s)
    max_lag_ms: float = 0.0  # how far behind its media clock the writes ever were


class Publisher(asyncio.Protocol):
    def __init__(self, index: int, url: str, chunk_size: int) -> None:
        parts = urlsplit(url)
        app, _, name = parts.path.lstrip("/").rpartition("/")
        if parts.query:
            name += "?" + parts.query
        self.report = PublisherReport(index, name)
        tc_url = f"{parts.scheme}://{parts.netloc}/{app}"
        self.conn = ClientConnection(app, name, tc_url, chunk_size=chunk_size)
        self.transport: asyncio.Transport | None = None
        loop = asyncio.get_running_loop()
        self.started: asyncio.Future[int] = loop.create_future()
        self.lost: asyncio.Future[None] = loop.create_future()
        self.writable = asyncio.Event()
        self.writable.set()
        self.plan: ChunkPlan | None = None
        self.pos = 0  # bytes of the plan sent
        self.sent = 0  # messages of the plan sent
        self.next_key = 0
        self.done = False

    # --- asyncio callbacks -----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)  # uvloop's do not subclass it
        self.transport = transport
        transport.set_write_buffer_limits(high=WRITE_HIGH_WATER_BYTES)
        self.conn.initiate()
        self._flush()

    def data_received(self, data: bytes) -> None:
        try:
            self.conn.receive_data(data)
        except RtmpError as e:
            self.fail(f"protocol error: {e}")
            return
        while (event := self.conn.next_event()) is not None:
            if isinstance(event, PublishStarted) and not self.started.done():
                self.started.set_result(event.stream_id)
            elif isinstance(event, StatusReceived) and event.level == "error":
                self.fail(f"{event.code}: {event.description}")
        self._flush()

    def pause_writing(self) -> None:
        self.writable.clear()

    def resume_writing(self) -> None:
        self.writable.set()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done:
            self.fail(f"connection lost: {exc or 'closed by the server'}")
        self.writable.set()
        if not self.lost.done():
            self.lost.set_result(None)

    # --- sending ---------------------------------------------------------------------------

    def fail(self, why: str) -> None:
        if not self.report.error:
            self.report.error = why
        self.done = True
        if not self.started.done():
            self.started.set_exception(ConnectionError(why))
        if self.transport is not None:
            self.transport.abort()

    def _flush(self) -> None:
        data = self.conn.data_to_send()
        if data and self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def send_upto(self, count: int, now_s: float) -> None:
        """Write the plan's messages [sent, count), noting when each keyframe left."""
        plan, transport = self.plan, self.transport
        if plan is None or transport is None or count <= self.sent or self.done:
            return
        end = plan.ends[count - 1]
        transport.write(memoryview(plan.data)[self.pos : end])
        self.report.bytes_sent += end - self.pos
        self.pos, self.sent = end, count
        keys, key_ends = plan.keyframes_ms, plan.keyframe_ends
        while self.next_key < len(key_ends) and key_ends[self.next_key] <= end:
            self.report.keyframes.append((keys[self.next_key], now_s))
            self.next_key += 1

    async def finish(self) -> None:
        """Unpublish as libavformat does (FCUnpublish, deleteStream), then close."""
        if self.done or self.transport is None:
            return
        self.done = True
        self.report.end_wall_s = time.time()
        try:
            self.conn.unpublish()
            self._flush()
        except RtmpError:
            pass
        await asyncio.sleep(UNPUBLISH_LINGER_S)
        self.transport.close()


async def connect(publisher: Publisher, url: str) -> None:
    parts = urlsplit(url)
    loop = asyncio.get_running_loop()
    await loop.create_connection(lambda: publisher, parts.hostname, parts.port or 1935)
    stream_id = await asyncio.wait_for(publisher.started, HANDSHAKE_TIMEOUT_S)
    if stream_id != 1:
        raise ConnectionError(f"server gave stream id {stream_id}; the plan is built for 1")
    publisher.report.start_wall_s = time.time()


@dataclass(slots=True)
class Pacer:
    """The one timer driving every paced publisher."""

    plan: ChunkPlan
    speed: float
    duration_ms: int
    interval_s: float = WRITE_INTERVAL_MS / 1000
    lateness_ms: list[float] = field(default_factory=list)
    finishing: list[asyncio.Task[None]] = field(default_factory=list)

    async def run(self, publishers: list[Publisher], stop_s: float) -> None:
        plan = self.plan
        tick = 0
        start = time.monotonic()
        active = True
        while active:
            tick += 1
            target = start + tick * self.interval_s
            await asyncio.sleep(max(0.0, target - time.monotonic()))
            self.lateness_ms.append((time.monotonic() - target) * 1000)
            now = time.time()
            active = False  # until a publisher is still connecting or sending
            for p in publishers:
                if p.done:
                    continue
                active = True
                if p.plan is None:
                    continue  # still connecting
                media_ms = (now - p.report.start_wall_s) * 1000 * self.speed
                if media_ms >= self.duration_ms or now >= stop_s:
                    self.finishing.append(asyncio.create_task(p.finish()))
                    continue
                due = plan.count_due(media_ms)
                if not p.writable.is_set():
                    if due > p.sent:  # the server is not reading: we fall behind
                        behind = media_ms - plan.times_ms[p.sent]
                        p.report.max_lag_ms = max(p.report.max_lag_ms, behind)
                    continue
                p.send_upto(due, now)


async def unpaced(publisher: Publisher, flv: FlvInput, chunk_size: int, stop_s: float) -> None:
    """Send as fast as the server reads until `stop_s`, encoding UNPACED_BLOCK_MS at a time."""
    builder = PlanBuilder(flv, chunk_size)
    transport = publisher.transport
    assert transport is not None
    pending: list[bytes | memoryview] = [builder.preamble()]
    while time.time() < stop_s and not publisher.done:
        if not pending:
            parts: list[bytes] = []
            scratch = [array("q") for _ in range(4)]
            target_ms = (builder.loop * flv.period_ms) + UNPACED_BLOCK_MS
            while builder.loop * flv.period_ms < target_ms:
                builder.next_loop(parts, *scratch, 0)
            blob = memoryview(b"".join(parts))
            step = UNPACED_WRITE_BYTES
            pending = [blob[i : i + step] for i in range(0, len(blob), step)][::-1]
        await publisher.writable.wait()
        if publisher.done:
            break
        piece = pending.pop()
        transport.write(piece)
        publisher.report.bytes_sent += len(piece)
        await asyncio.sleep(0)  # let data_received (acks, kicks) run between writes
    await publisher.finish()


async def run(args: argparse.Namespace) -> dict[str, object]:
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    wall0 = time.time()
    flv = load_flv(args.input)
    publishers = [Publisher(i, args.url.format(i=i), args.chunk_size) for i in range(args.n)]
    paced = args.speed > 0
    duration_ms = int(args.duration * 1000 * (args.speed if paced else 1))
    plan = build_plan(flv, args.chunk_size, duration_ms) if paced else None
    build_s = time.time() - wall0
    stop_s = time.time() + args.ramp + args.duration + args.grace

    async def start_one(p: Publisher, delay_s: float) -> None:
        await asyncio.sleep(delay_s)
        try:
            await connect(p, args.url.format(i=p.report.index))
        except (OSError, ConnectionError, TimeoutError) as e:
            p.fail(f"connect: {type(e).__name__}: {e}")
            return
        if plan is not None:
            p.plan = plan  # the pacer takes it from here
            p.send_upto(1, time.time())  # onMetaData and sequence headers at once
        else:
            await unpaced(p, flv, args.chunk_size, time.time() + args.duration)

    step = args.ramp / max(1, args.n)
    starts = [asyncio.create_task(start_one(p, i * step)) for i, p in enumerate(publishers)]
    interval_s = args.write_interval_ms / 1000
    pacer = Pacer(plan, args.speed, duration_ms, interval_s) if plan is not None else None
    if pacer is not None:
        await pacer.run(publishers, stop_s)
    await asyncio.gather(*starts)
    closing = [p.lost for p in publishers if p.transport is not None]
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.gather(*closing), CLOSE_TIMEOUT_S)
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    late = sorted(pacer.lateness_ms) if pacer is not None and pacer.lateness_ms else [0.0]
    return {
        "n": args.n,
        "speed": args.speed,
        "duration_s": args.duration,
        "chunk_size": args.chunk_size,
        "write_interval_ms": args.write_interval_ms,
        "input": {
            "path": str(flv.path),
            "period_ms": flv.period_ms,
            "bitrate_bps": round(flv.media_bytes_per_s * 8),
        },
        "plan_build_s": round(build_s, 3),
        "wall_s": round(time.time() - wall0, 3),
        "cpu_s": round(cpu1.ru_utime + cpu1.ru_stime - cpu0.ru_utime - cpu0.ru_stime, 3),
        "bytes_sent": sum(p.report.bytes_sent for p in publishers),
        "tick_late_ms": {
            "p50": round(late[len(late) // 2], 2),
            "p99": round(late[int(len(late) * 0.99)], 2),
            "max": round(late[-1], 2),
        },
        "errors": sum(1 for p in publishers if p.report.error),
        "publishers": [
            {
                "index": p.report.index,
                "name": p.report.name,
                "start": p.report.start_wall_s,
                "end": p.report.end_wall_s,
                "bytes": p.report.bytes_sent,
                "error": p.report.error,
                "max_lag_ms": round(p.report.max_lag_ms, 1),
                "keyframes": p.report.keyframes,
            }
            for p in publishers
        ],
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--input", required=True, help="FLV file (H.264/AAC)")
    p.add_argument("--url", required=True, help="publish URL; {i} is the publisher's index")
    p.add_argument("-n", type=int, default=1, help="concurrent publishers")
    p.add_argument("--duration", type=float, default=30.0, help="seconds each publisher sends")
    p.add_argument("--speed", type=float, default=1.0, help="multiple of real time; 0 = unpaced")
    p.add_argument("--ramp", type=float, default=5.0, help="seconds over which publishers start")
    p.add_argument("--grace", type=float, default=15.0, help="extra seconds before giving up")
    p.add_argument("--chunk-size", type=int, default=4096, help="our RTMP chunk size")
    p.add_argument(
        "--write-interval-ms",
        type=float,
        default=WRITE_INTERVAL_MS,
        help="paced: each publisher writes what is due this often",
    )
    p.add_argument("--json", help="write the full report here")
    args = p.parse_args(argv)
    try:
        import uvloop

        report = uvloop.run(run(args))
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        report = asyncio.run(run(args))
    if args.json:
        Path(args.json).write_text(json.dumps(report))
    publishers = report.pop("publishers")
    assert isinstance(publishers, list)
    report["first_errors"] = [p["error"] for p in publishers if p["error"]][:3]
    print(json.dumps(report))


if __name__ == "__main__":
    main()
