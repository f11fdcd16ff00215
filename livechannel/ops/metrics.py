"""Prometheus metrics (`GET /-/metrics`), named by the Prometheus conventions.

Two kinds of figures, so the hot path pays nothing it does not have to:

- Events counted where they happen, at most once per publish, segment, storage put, HTTP
  request or store operation — never per RTMP chunk or media frame: the module-level
  families below (`PUBLISHES`, `SEGMENTS`, ...).
- Levels and running totals read when Prometheus scrapes: publishers live, RTMP bytes
  received (every connection already counts its bytes for RTMP acknowledgements), upload
  queue bytes, event-loop lag, and the optional per-channel series. The service registers
  a `LiveSource` (server.py) that this module calls at scrape time only.

One process's figures live in `REGISTRY`; `livechannel.ops.metrics_workers` merges every
worker's into one scrape (`--workers N`). docs/operations.md lists the families.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    disable_created_metrics,
)
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from livechannel.errors import StorageError

# `_created` series are one timestamp per counter; summed across workers they mean nothing.
disable_created_metrics()  # type: ignore[no-untyped-call]

PREFIX = "livechannel"
REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=REGISTRY)  # process_cpu_seconds_total, memory, descriptors

# Segment lengths cluster at FragDuration (default 5 s); forced cuts reach 60 s.
SEGMENT_SECONDS_BUCKETS = (0.5, 1, 2, 3, 4, 5, 6, 8, 10, 15, 20, 30, 60)
# A local put takes ~1 ms, an S3 put tens of ms; seconds mean trouble.
STORAGE_SECONDS_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
# From the keyframe that closes a segment to the playlist naming it: what players wait for.
PLAYLIST_SECONDS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
# HTTP requests and metadata store operations: milliseconds, unless something is wrong. Few
# buckets: these histograms have a series per operation (~20 each), and every line of a
# scrape costs ~15 µs to render.
REQUEST_SECONDS_BUCKETS = (0.001, 0.0025, 0.01, 0.025, 0.1, 0.25, 1, 5)

PUBLISHES = Counter(
    f"{PREFIX}_publishes", "RTMP publish requests decided, by result (accepted, refused) "
    "and refusal reason", ["result", "reason"], registry=REGISTRY,
)  # fmt: skip
SEGMENTS = Counter(
    f"{PREFIX}_segments_written", "Segments stored (object put and playlist updated)",
    registry=REGISTRY,
)  # fmt: skip
SEGMENT_SECONDS = Histogram(
    f"{PREFIX}_segment_duration_seconds", "Media duration of the segments written",
    buckets=SEGMENT_SECONDS_BUCKETS, registry=REGISTRY,
)  # fmt: skip
STORAGE_PUT_SECONDS = Histogram(
    f"{PREFIX}_storage_put_duration_seconds", "Object storage puts (segments, playlists, "
    "snapshots), successful or not, by backend", ["backend"],
    buckets=STORAGE_SECONDS_BUCKETS, registry=REGISTRY,
)  # fmt: skip
STORAGE_ERRORS = Counter(
    f"{PREFIX}_storage_errors", "Object storage operations that failed, by backend",
    ["backend", "operation"], registry=REGISTRY,
)  # fmt: skip
PLAYLIST_SECONDS = Histogram(
    f"{PREFIX}_playlist_latency_seconds", "From the keyframe that closes a segment to the "
    "live playlist naming it being stored", buckets=PLAYLIST_SECONDS_BUCKETS, registry=REGISTRY,
)  # fmt: skip
SNAPSHOTS = Counter(
    f"{PREFIX}_snapshots", "Snapshots due, by result (stored, skipped)", ["result"],
    registry=REGISTRY,
)  # fmt: skip
HTTP_REQUESTS = Counter(
    f"{PREFIX}_http_requests", "HTTP requests answered, by API operation and status",
    ["operation", "status"], registry=REGISTRY,
)  # fmt: skip
HTTP_SECONDS = Histogram(
    f"{PREFIX}_http_request_duration_seconds", "HTTP request handling time (to the response "
    "headers; bodies stream after), by API operation", ["operation"],
    buckets=REQUEST_SECONDS_BUCKETS, registry=REGISTRY,
)  # fmt: skip
STORE_SECONDS = Histogram(
    f"{PREFIX}_store_operation_duration_seconds", "Metadata store operations, by operation",
    ["operation"], buckets=REQUEST_SECONDS_BUCKETS, registry=REGISTRY,
)  # fmt: skip
WEBHOOKS = Counter(
    f"{PREFIX}_webhook_requests", "Webhook requests, by event and result (delivered, "
    "allowed, denied, failed: one attempt; dropped: given up)", ["event", "result"],
    registry=REGISTRY,
)  # fmt: skip
EVENT_LOOP_LAG = Gauge(
    f"{PREFIX}_event_loop_lag_seconds", "How late the latest event-loop probe ran (the "
    "worst worker's, with --workers)", registry=REGISTRY,
)  # fmt: skip
LAG_PROBE_INTERVAL_S = 0.5  # one timer a half second: nothing next to the media path


def refused(reason: str) -> None:
    PUBLISHES.labels("refused", reason).inc()


def accepted() -> None:
    PUBLISHES.labels("accepted", "").inc()


@dataclass(frozen=True, slots=True)
class ChannelFigures:
    bucket: str
    channel: str
    received_bytes: int  # this push's connection, RTMP bytes
    segments: int  # written by this push
    bitrate_bps: int  # recent media bitrate


@dataclass(slots=True)
class LiveFigures:
    """What one service holds right now (read at scrape time)."""

    publishers: int = 0
    rtmp_connections: int = 0
    rtmp_received_bytes: int = 0  # since start, every connection, closed or open
    upload_queue_bytes: int = 0
    webhook_queue: int = 0
    heartbeat_lag_s: float = 0.0
    channels: list[ChannelFigures] = field(default_factory=list)
    channels_omitted: int = 0  # live channels beyond the per-channel bound


LiveSource = Callable[[], LiveFigures]


class _LiveCollector(Collector):
    """The scrape-time families of every registered service (normally one per process)."""

    def __init__(self) -> None:
        self.sources: list[LiveSource] = []

    def describe(self) -> Iterable[Metric]:
        return ()  # names are fixed here; the registry need not collect to learn them

    def collect(self) -> Iterator[Metric]:
        figures = [source() for source in self.sources]
        total = LiveFigures()
        for f in figures:
            total.publishers += f.publishers
            total.rtmp_connections += f.rtmp_connections
            total.rtmp_received_bytes += f.rtmp_received_bytes
            total.upload_queue_bytes += f.upload_queue_bytes
            total.webhook_queue += f.webhook_queue
            total.heartbeat_lag_s = max(total.heartbeat_lag_s, f.heartbeat_lag_s)
            total.channels += f.channels
            total.channels_omitted += f.channels_omitted
        gauge, counter = GaugeMetricFamily, CounterMetricFamily
        yield gauge(f"{PREFIX}_publishers_live", "Publishers pushing now", total.publishers)
        yield gauge(f"{PREFIX}_rtmp_connections", "Open RTMP connections", total.rtmp_connections)
        yield counter(
            f"{PREFIX}_rtmp_received_bytes",
            "Bytes received on RTMP connections (handshake, commands and media)",
            total.rtmp_received_bytes,
        )
        yield gauge(
            f"{PREFIX}_upload_queue_bytes",
            "Segment bytes waiting for object storage",
            total.upload_queue_bytes,
        )
        yield gauge(
            f"{PREFIX}_webhook_queue_events",
            "Webhook notifications waiting to be sent",
            total.webhook_queue,
        )
        yield gauge(
            f"{PREFIX}_heartbeat_lag_seconds",
            "How late the latest heartbeat round finished (event loop plus metadata store; "
            "new publishes are refused past max_heartbeat_lag_s)",
            total.heartbeat_lag_s,
        )
        if not any(f.channels or f.channels_omitted for f in figures):
            return
        labels = ["bucket", "channel"]
        received = counter(
            f"{PREFIX}_channel_received_bytes",
            "RTMP bytes received by the channel's current push",
            labels=labels,
        )
        segments = counter(
            f"{PREFIX}_channel_segments_written",
            "Segments written by the channel's current push",
            labels=labels,
        )
        bitrate = gauge(
            f"{PREFIX}_channel_bitrate_bits_per_second",
            "Recent media bitrate of the channel's push",
            labels=labels,
        )
        for ch in total.channels:
            where = [ch.bucket, ch.channel]
            received.add_metric(where, ch.received_bytes)
            segments.add_metric(where, ch.segments)
            bitrate.add_metric(where, ch.bitrate_bps)
        yield from (received, segments, bitrate)
        yield gauge(
            f"{PREFIX}_channel_series_omitted",
            "Live channels left out of the per-channel series (over max_metric_channels)",
            total.channels_omitted,
        )


LIVE = _LiveCollector()
REGISTRY.register(LIVE)


def channel_figures(
    channels: Sequence[ChannelFigures], bound: int
) -> tuple[list[ChannelFigures], int]:
    """The first `bound` channels by name, and how many were left out."""
    ordered = sorted(channels, key=lambda c: (c.bucket, c.channel))
    return ordered[:bound], max(0, len(ordered) - bound)


async def lag_probe() -> None:
    """Keep EVENT_LOOP_LAG up to date: how late a timer fires is what every callback waits."""
    loop = asyncio.get_running_loop()
    while True:
        due = loop.time() + LAG_PROBE_INTERVAL_S
        await asyncio.sleep(LAG_PROBE_INTERVAL_S)
        EVENT_LOOP_LAG.set(max(0.0, loop.time() - due))


class TimedStore:
    """A metadata store whose coroutine methods are timed into STORE_SECONDS (by method
    name: a bounded label set); everything else passes through."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self._wrapped: dict[str, Any] = {}

    def __getattr__(self, name: str) -> Any:
        wrapped = self._wrapped.get(name)
        if wrapped is not None:
            return wrapped
        attr = getattr(self._inner, name)
        if name.startswith("_") or not asyncio.iscoroutinefunction(attr):
            return attr
        histogram = STORE_SECONDS.labels(name)
        inner = self._inner

        async def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                # Looked up per call: a test may patch the store's method after first use.
                return await getattr(inner, name)(*args, **kwargs)
            finally:
                histogram.observe(time.perf_counter() - start)

        self._wrapped[name] = timed
        return timed


class TimedStorage:
    """An object storage whose puts are timed into STORAGE_PUT_SECONDS and whose failures
    are counted in STORAGE_ERRORS, labelled with the backend ("local", "s3")."""

    def __init__(self, inner: Any, backend: str) -> None:
        self._inner = inner
        self.backend = backend
        self._put_seconds = STORAGE_PUT_SECONDS.labels(backend)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def _failed(self, operation: str) -> None:
        STORAGE_ERRORS.labels(self.backend, operation).inc()

    async def put(self, key: str, data: Any, content_type: str) -> Any:
        return await self.timed_put(lambda: self._inner.put(key, data, content_type))

    def open_writer(self, key: str) -> Any:
        return _TimedWriter(self._inner.open_writer(key), self)

    async def head(self, key: str) -> Any:
        with self._counting("head"):
            return await self._inner.head(key)

    async def get(self, key: str, start: int = 0, end: int | None = None) -> Any:
        with self._counting("get"):
            return await self._inner.get(key, start, end)

    async def delete(self, key: str) -> bool:
        with self._counting("delete"):
            return bool(await self._inner.delete(key))

    async def list(self, prefix: str, marker: str, max_keys: int, delimiter: str = "") -> Any:
        with self._counting("list"):
            return await self._inner.list(prefix, marker, max_keys, delimiter)

    async def close(self) -> None:
        await self._inner.close()

    async def timed_put(self, put: Callable[[], Awaitable[Any]]) -> Any:
        start = time.perf_counter()
        try:
            return await put()
        except Exception:
            self._failed("put")
            raise
        finally:
            self._put_seconds.observe(time.perf_counter() - start)

    @contextlib.contextmanager
    def _counting(self, operation: str) -> Iterator[None]:
        """Count StorageError (the backend failed); "no such key" and the like are answers."""
        try:
            yield
        except StorageError:
            self._failed(operation)
            raise


class _TimedWriter:
    """A segment written as it grows (storage.base.SegmentWriter): its `close` (the rest of
    the bytes, then the object appears) is what is timed and counted as its put."""

    __slots__ = ("_inner", "_timed", "abort", "write")

    def __init__(self, inner: Any, timed: TimedStorage) -> None:
        self._inner = inner
        self._timed = timed
        self.write = inner.write  # per hand over: no wrapper call
        self.abort = inner.abort

    @property
    def pending_bytes(self) -> int:
        return int(self._inner.pending_bytes)

    async def close(self) -> Any:
        return await self._timed.timed_put(self._inner.close)
