#!/usr/bin/env python3
"""The ingest hot path in one process, no sockets: CPU per stream-minute and MB/s per core.

    python bench/hotpath.py [--input in.flv] [--seconds 300] [--storage null|local] [--profile]
                            [--format ts|fmp4|llhls]

A real `RtmpProtocol` (the ingest edge, with its ServerConnection, PushPipeline, demuxer,
segmenter and TS muxer) is driven with a fake transport: the publisher's handshake and
commands come from `ClientConnection`, the media from the load generator's pre-built chunk
stream, fed in READ_BYTES pieces as a socket would deliver them. Storage is a null sink by
default (what is measured is our code, not the disk); `--storage local` adds LocalStorage.
`--read-bytes 6600` imitates a paced 2.6 Mbit/s publisher's 20 ms writes.
`--profile` runs pyinstrument around the feed.
"""

from __future__ import annotations

import argparse
import asyncio
import pickle
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.chunkplan import DEFAULT_INPUT, ChunkPlan, build_plan, load_flv
from livechannel.config import BucketConfig, Config, HlsConfig
from livechannel.fleet.registry import Registry
from livechannel.hls.live_endpoint import LowLatencyRegistry
from livechannel.ingest import reads
from livechannel.ingest.edge import IngestDeps, IngestServer
from livechannel.rtmp.client import ClientConnection, PublishStarted
from livechannel.storage.base import Body, HeldWriter, ObjectInfo
from livechannel.storage.local import LocalStorage
from livechannel.store.base import Acl, ChannelConfig, SegmentFormat
from livechannel.store.memory import MemoryStore

READ_BYTES = 256 * 1024  # what uvloop hands data_received at most per read
CHUNK_SIZE = 65536  # what libavformat sends us after our Set Chunk Size
YIELD_EVERY = 16  # reads between event-loop turns (uploads run then)


class NullStorage:
    """Counts what it is given and keeps nothing."""

    def __init__(self) -> None:
        self.bytes = 0
        self.puts = 0

    async def put(self, key: str, data: Body, content_type: str) -> ObjectInfo:
        size = sum(map(len, data)) if isinstance(data, list) else len(data)
        self.bytes += size
        self.puts += 1
        return ObjectInfo(key, size, "", 0, content_type)

    def open_writer(self, key: str) -> HeldWriter:
        return HeldWriter(self.put, key)

    async def close(self) -> None:
        pass


class FakeTransport:
    def __init__(self) -> None:
        self.out = bytearray()
        self.reading = True
        self.closed = False

    def write(self, data: bytes) -> None:
        self.out += data

    def get_extra_info(self, name: str, default: object = None) -> object:
        return ("127.0.0.1", 40000) if name == "peername" else default

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    abort = close

    def can_write_eof(self) -> bool:
        return False

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True


def cached_plan(path: Path, chunk_size: int, duration_ms: int) -> ChunkPlan:
    """The chunk stream, built once per (input, chunk size, length) and kept beside the input:
    instruction counts (`valgrind --tool=callgrind`) of two lengths then differ by the ingest
    work alone, not by the plan's encoding."""
    stat = path.stat()
    cache = path.with_name(f"{path.stem}.plan-{stat.st_size}-{chunk_size}-{duration_ms}.pickle")
    if cache.exists():
        with cache.open("rb") as f:
            plan: ChunkPlan = pickle.load(f)
        return plan
    plan = build_plan(load_flv(path), chunk_size, duration_ms)
    with cache.open("wb") as f:
        pickle.dump(plan, f)
    return plan


async def run(args: argparse.Namespace) -> None:
    plan = cached_plan(Path(args.input), args.chunk_size, args.seconds * 1000)
    store = await MemoryStore.open()
    await store.ensure_bucket("live", Acl.PUBLIC_READ_WRITE, 0)
    segment_format = SegmentFormat.TS if args.format == "ts" else SegmentFormat.FMP4
    part_s = 0.5 if args.format == "llhls" else 0.0
    config = Config(buckets=(BucketConfig("live", hls=HlsConfig(segment_format, part_s)),))
    await store.put_channel("live", "bench", ChannelConfig(), 0)
    tmp = tempfile.TemporaryDirectory()
    storage = LocalStorage(tmp.name) if args.storage == "local" else NullStorage()
    now_ms = lambda: time.time_ns() // 1_000_000  # noqa: E731
    registry = Registry(store, now_ms=now_ms, idle_timeout_s=30, end_grace_s=10)
    deps = IngestDeps(config, store, {"live": storage}, {}, registry, "bench", now_ms,  # type: ignore[dict-item]
                      low_latency=LowLatencyRegistry())  # fmt: skip
    # This one publisher stands for one of many: it must not rest between reads (a process
    # with few publishers rests them, ingest/reads.py), or the feed would wait on the timer.
    reads.READ_REST_MAX_PUBLISHERS = -1
    server = IngestServer(deps)
    proto = server.protocol()
    transport = FakeTransport()
    proto.connection_made(transport)  # type: ignore[arg-type]
    client = ClientConnection("live", "bench", "rtmp://127.0.0.1/live", chunk_size=args.chunk_size)
    client.initiate()
    started = False
    while not started:
        proto.data_received(client.data_to_send())
        await asyncio.sleep(0.01)  # the publish decision is a task
        client.receive_data(bytes(transport.out))
        transport.out.clear()
        while (event := client.next_event()) is not None:
            started = started or isinstance(event, PublishStarted)
    data = memoryview(plan.data)
    profiler = None
    if args.profile:
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.0005)
        profiler.start()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    step = args.read_bytes
    for n, start in enumerate(range(0, len(data), step)):
        proto.data_received(bytes(data[start : start + step]))
        if n % YIELD_EVERY == 0 or not transport.reading:
            await asyncio.sleep(0)
            while not transport.reading:
                await asyncio.sleep(0.001)
    assert proto.push is not None
    await proto.push.end("bench over")
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    if profiler is not None:
        profiler.stop()
        print(profiler.output_text(unicode=True, color=False, show_all=False))
    media_min = plan.duration_ms / 60_000
    print(
        f"{len(data) / 1e6:.0f} MB, {plan.duration_ms / 1000:.0f} s of media in {wall:.2f} s "
        f"({cpu:.2f} CPU-s): {cpu / media_min:.4f} CPU-s per stream-minute, "
        f"{len(data) / cpu / 1e6:.1f} MB/s per core, storage {args.storage}, "
        f"chunks of {args.chunk_size} bytes, reads of {args.read_bytes} bytes"
        + (f", {storage.bytes / 1e6:.1f} MB written" if isinstance(storage, NullStorage) else "")
    )
    await storage.close()
    tmp.cleanup()


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--input", default=str(DEFAULT_INPUT))
    p.add_argument("--seconds", type=int, default=300, help="media seconds to push")
    p.add_argument("--storage", choices=("null", "local"), default="null")
    p.add_argument("--read-bytes", type=int, default=READ_BYTES, help="bytes per data_received")
    p.add_argument(
        "--chunk-size", type=int, default=CHUNK_SIZE, help="the publisher's RTMP chunk size"
    )
    p.add_argument("--profile", action="store_true")
    p.add_argument("--format", choices=("ts", "fmp4", "llhls"), default="ts")
    args = p.parse_args()
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
