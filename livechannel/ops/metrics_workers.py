"""One scrape returns the whole service, however many worker processes serve it.

With `--workers N` the kernel hands each connection, a scrape included, to any worker. So
every worker answers for all: it asks the others for their figures over a local socket,
merges them with its own and renders one exposition. We aggregate ourselves rather than use
prometheus_client's multiprocess mode: that mode is chosen by an environment variable before
the first metric exists (process-wide, so it cannot differ between a test's in-process
services), it keeps one memory-mapped file per process and metric kind that must be cleaned
after every restart, and its gauges need a merge mode declared per metric anyway. Ours costs
nothing between scrapes.

Each worker listens on an abstract Unix socket (Linux: no file to clean up, gone with the
process) named after the data directory and the worker's index; a peer that does not answer
within PEER_TIMEOUT_S is left out, and `livechannel_metrics_workers_answered` says how many
did. Merge: counters and histograms add up; gauges add up (publishers, bytes queued) except
the lag gauges, which take the worst worker's, and the process start time, the earliest.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import socket
from collections.abc import Awaitable, Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from livechannel.ops.metrics import REGISTRY

log = logging.getLogger("livechannel.ops.metrics")

METRICS_PATH = "/-/metrics"
PEER_TIMEOUT_S = 1.0  # a worker answers from memory in milliseconds; a stuck one is skipped
# One worker's figures as JSON: ~100 series without per-channel labels, a few hundred bytes
# each with them at max_metric_channels. Anything bigger is not one of our workers.
MAX_PEER_BYTES = 16 * 1024 * 1024
WORST = frozenset({"livechannel_event_loop_lag_seconds", "livechannel_heartbeat_lag_seconds",
                   "process_max_fds"})  # fmt: skip
EARLIEST = frozenset({"process_start_time_seconds"})

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Family = dict[str, Any]  # {"name", "type", "help", "samples": [[name, labels, value], ...]}


def socket_name(data_dir: Path, index: int) -> str:
    digest = hashlib.sha256(str(data_dir.resolve()).encode()).hexdigest()[:16]
    return f"\0livechannel-metrics-{digest}-{index}"


def families(registry: CollectorRegistry) -> list[Family]:
    return [
        {
            "name": m.name,
            "type": m.type,
            "help": m.documentation,
            "samples": [[s.name, s.labels, s.value] for s in m.samples],
        }
        for m in registry.collect()
    ]


def merge(per_worker: Iterable[list[Family]]) -> list[Metric]:
    merged: dict[str, Metric] = {}
    values: dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]] = {}
    for worker in per_worker:
        for fam in worker:
            name = fam["name"]
            if name not in merged:
                merged[name] = Metric(name, fam["help"], fam["type"])
                values[name] = {}
            seen = values[name]
            for sample_name, labels, value in fam["samples"]:
                key = (sample_name, tuple(sorted(labels.items())))
                if key not in seen:
                    seen[key] = value
                elif name in WORST:
                    seen[key] = max(seen[key], value)
                elif name in EARLIEST:
                    seen[key] = min(seen[key], value)
                else:
                    seen[key] += value
    for name, metric in merged.items():
        for (sample_name, labels), value in values[name].items():
            metric.add_sample(sample_name, dict(labels), value)
    return list(merged.values())


class _Fixed(Collector):
    def __init__(self, metrics: list[Metric]) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        return iter(self.metrics)


class WorkerMetrics:
    """This worker's part: answer the siblings, and render a whole-service scrape."""

    def __init__(self, data_dir: Path, index: int, workers: int) -> None:
        self.data_dir, self.index, self.workers = data_dir, index, workers
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        if self.workers > 1:
            name = socket_name(self.data_dir, self.index)
            self._server = await asyncio.start_unix_server(self._answer, path=name)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _answer(self, _reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            writer.write(json.dumps(families(REGISTRY)).encode())
            await writer.drain()
        except OSError:
            pass  # the asking worker gave up waiting
        finally:
            writer.close()

    async def _ask(self, index: int) -> list[Family] | None:
        try:
            async with asyncio.timeout(PEER_TIMEOUT_S):
                # Connected here, not by open_unix_connection(path): uvloop refuses abstract
                # names there (EINVAL). A local connect completes at once or fails (EAGAIN
                # when the sibling's backlog is full: it is stuck, skip it).
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.setblocking(False)
                try:
                    sock.connect(socket_name(self.data_dir, index))
                except OSError:
                    sock.close()
                    raise
                reader, writer = await asyncio.open_unix_connection(sock=sock)
                try:
                    data = await reader.read(MAX_PEER_BYTES)
                finally:
                    writer.close()
            answer: list[Family] = json.loads(data)
            return answer
        except (OSError, TimeoutError, ValueError) as e:
            log.warning("metrics: worker %d did not answer: %s", index, e)
            return None

    async def scrape(self) -> bytes:
        if self.workers == 1:
            return generate_latest(REGISTRY)
        others = [i for i in range(self.workers) if i != self.index]
        answers = await asyncio.gather(*(self._ask(i) for i in others))
        got = [a for a in answers if a is not None]
        metrics = merge([families(REGISTRY), *got])
        metrics.append(GaugeMetricFamily("livechannel_metrics_workers_answered",
                                         "Workers whose figures this scrape holds",
                                         1 + len(got)))  # fmt: skip
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Fixed(metrics))
        return generate_latest(registry)


def metrics_handler(exporter: WorkerMetrics, token: str) -> Handler:
    """`GET /-/metrics`: open, or with `token` set only for `Authorization: Bearer <token>`."""
    expected = f"Bearer {token}".encode()

    async def handle(request: web.Request) -> web.StreamResponse:
        if token:
            given = request.headers.get("Authorization", "").encode()
            if not hmac.compare_digest(given, expected):
                return web.Response(status=401, text="a bearer token is required\n",
                                    headers={"WWW-Authenticate": "Bearer"})  # fmt: skip
        body = await exporter.scrape()
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_PLAIN_0_0_4,
                                                "Cache-Control": "no-store"})  # fmt: skip

    return handle


async def serve_metrics_only(
    host: str, port: int, handler: Handler, *, reuse_port: bool
) -> tuple[web.AppRunner, int]:
    """`--metrics-listen HOST:PORT`: /-/metrics on a port of its own (e.g. a private
    interface), and nowhere else. Returns the runner (to clean up) and the bound port."""
    app = web.Application()
    app.router.add_get(METRICS_PATH, handler)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_port=reuse_port or None)
    await site.start()
    bound = runner.addresses[0][1] if runner.addresses else port
    return runner, int(bound)
