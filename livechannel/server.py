"""The one place that wires everything: store, storage, registry, RTMP listener, HTTP API.

`serve()` runs until `shutdown` is set, then shuts down in order: stop accepting, kick every
publisher (each flushes its open segment, writes its playlist and closes its push record),
stop the HTTP API, close the store. Bounded by SHUTDOWN_TIMEOUT_S.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

from aiohttp import web

from livechannel import console
from livechannel.api.app import create_app
from livechannel.api.context import ApiContext
from livechannel.api.owners import PushOwners, socket_dir
from livechannel.auth.urls import ServiceUrls
from livechannel.config import BucketConfig, Config
from livechannel.fleet.liveness import STALE_PUSH_MS, dead_workers, runs_here
from livechannel.fleet.node import NodeIdentity, WorkerName, earlier_lives
from livechannel.fleet.registry import Registry
from livechannel.fleet.retention import retention_loop
from livechannel.hls.live_endpoint import LowLatencyRegistry
from livechannel.hls.live_playlist import LivePlaylist, live_target_s
from livechannel.ingest.edge import IngestDeps, IngestServer
from livechannel.ingest.proxied import ProxyProtocolReader
from livechannel.ingest.sniff import SniffingProtocol
from livechannel.ingest.tls import ServerTls
from livechannel.ops import memory, metrics
from livechannel.ops.faults import RepeatedFault
from livechannel.ops.metrics import TimedStorage, TimedStore
from livechannel.ops.metrics_workers import WorkerMetrics, metrics_handler, serve_metrics_only
from livechannel.ops.redact import http_server_logger
from livechannel.ops.webhooks import Webhooks
from livechannel.storage.base import ObjectStorage
from livechannel.storage.factory import bucket_policy, make_storage
from livechannel.storage.local import LocalStorage
from livechannel.store.base import Acl, Channel, ChannelConfig, MetadataStore, Push
from livechannel.store.factory import DB_FILE, open_store
from livechannel.store.postgres import PostgresStore
from livechannel.store.postgres_notices import NoticeListener

log = logging.getLogger("livechannel.server")

SHUTDOWN_TIMEOUT_S = 10.0  # flushing open segments takes one storage put each
STALE_SWEEP_INTERVAL_S = 2.0
# Beyond STALE_PUSH_MS of working store, the heartbeat interval and a round trip: time for
# every live worker to have written a heartbeat again after an outage.
SWEEP_WARMUP_MARGIN_MS = 2_000
# Connections the kernel may hold before we accept them. asyncio's default (100) overflows in
# a reconnect storm or a scan; the kernel then drops handshakes silently, and a client that
# has not sent anything yet never learns. The kernel caps it at net.core.somaxconn.
LISTEN_BACKLOG = 4096
__all__ = ["DB_FILE", "Running", "serve"]  # DB_FILE: where the default SQLite store lives


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(slots=True)
class Running:
    """What a started service exposes (tests read the bound ports from here)."""

    rtmp_port: int
    http_port: int
    urls: ServiceUrls
    store: MetadataStore
    acls: Mapping[str, Acl] = field(default_factory=dict)  # bucket -> the ACL in force
    metrics_port: int | None = None  # --metrics-listen's port; None: /-/metrics on http_port
    rtmps_port: int | None = None  # None: no RTMPS listener
    tls: ServerTls | None = None


async def _reload_tls(tls: ServerTls | None, trigger: asyncio.Event | None) -> None:
    """Re-read the RTMPS certificate each time `trigger` is set (SIGHUP), until cancelled."""
    if tls is None or trigger is None:
        return
    while True:
        await trigger.wait()
        trigger.clear()
        tls.reload()


async def _sweep_stale(
    store: MetadataStore,
    worker: str,
    on_closed: Callable[[Push], Awaitable[None]],
    may_run: Callable[[], bool],
    store_up_since_ms: Callable[[], int | None] | None = None,
) -> None:
    """Close pushes whose owner died (kill -9, power loss) at their last heartbeat, and let
    their playlists end; never this worker's own, nor a slow one's (livechannel.fleet.liveness).
    A failed sweep is retried: this loop must outlive store hiccups. `may_run`: on PostgreSQL
    only the leader sweeps (one query every interval for the cluster, not one per worker).

    Heartbeats are judged only once the store has been reachable for STALE_PUSH_MS + a
    margin: after an outage nobody's heartbeats got through, and every push would look dead
    the moment the store came back. `store_up_since_ms` says since when (the notice session,
    on PostgreSQL); without it, since this loop's own queries last failed."""
    fault = RepeatedFault(log, "the stale push sweep")
    own_since_ms: int | None = None
    while True:
        if not may_run():
            await asyncio.sleep(STALE_SWEEP_INTERVAL_S)
            continue
        try:
            now = now_ms()
            latest = await store.running_workers()
            if own_since_ms is None:
                own_since_ms = now
            since = store_up_since_ms() if store_up_since_ms is not None else own_since_ms
            if since is not None and now - since >= STALE_PUSH_MS + SWEEP_WARMUP_MARGIN_MS:
                dead = dead_workers(latest, worker, now)
                for push in await store.close_stale_pushes(now - STALE_PUSH_MS, dead):
                    log.warning("closed push of %s/%s left by a dead worker", push.bucket,
                                push.channel)  # fmt: skip
                    await on_closed(push)
        except Exception:
            own_since_ms = None
            fault.failed()
        else:
            fault.succeeded()
        await asyncio.sleep(STALE_SWEEP_INTERVAL_S)


async def settle_acl(store: MetadataStore, bucket: BucketConfig, stored: Acl) -> Acl:
    """The ACL a bucket starts with. A configured ACL (TOML, flag, env) is put in force over
    the stored one: a restart with `--bucket-acl private` must close a bucket someone opened
    with PutBucketAcl. Without one, the stored ACL stands (the API's PutBucketAcl survives
    restarts), said at start when it is not the default."""
    if stored == bucket.acl:
        return stored
    if bucket.acl_configured:
        await store.set_bucket_acl(bucket.name, bucket.acl)
        log.warning("bucket %s: ACL %s as configured, replacing %s (set through PutBucketAcl)",
                    bucket.name, bucket.acl.value, stored.value)  # fmt: skip
        return bucket.acl
    log.warning("bucket %s: ACL %s, as last set through PutBucketAcl (the configuration sets "
                "none; set one to pin it)", bucket.name, stored.value)  # fmt: skip
    return stored


async def serve(
    config: Config,
    shutdown: asyncio.Event,
    on_ready: Callable[[Running], None] | None = None,
    worker_index: int = 0,
    reload_tls: asyncio.Event | None = None,
) -> None:
    """Run worker `worker_index` (0 unless --workers) of this node until `shutdown` is set.
    Setting `reload_tls` (SIGHUP) re-reads the RTMPS certificate."""
    data_dir = config.data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    # Every store operation and storage put is timed for /-/metrics (livechannel.ops.metrics).
    opened = await open_store(config.store, data_dir)
    store = cast(MetadataStore, TimedStore(opened)) if config.metrics else opened
    storages = {}
    local_storages: dict[str, LocalStorage] = {}  # their crash leftovers are removed at start
    acls: dict[str, Acl] = {}
    now = now_ms()
    for bucket in config.buckets:
        stored = await store.ensure_bucket(bucket.name, bucket.acl, now)
        acls[bucket.name] = await settle_acl(store, bucket, stored.acl)
        backend = str(bucket.storage.get("type", "local"))
        storage = make_storage(bucket, data_dir, os.environ, Path.home())
        if isinstance(storage, LocalStorage):
            local_storages[bucket.name] = storage
        if config.metrics:
            storage = cast(ObjectStorage, TimedStorage(storage, backend))
        storages[bucket.name] = storage
    if (
        config.demo_channel
        and await store.get_channel(config.default_bucket, config.demo_channel) is None
    ):
        await store.put_channel(config.default_bucket, config.demo_channel, ChannelConfig(), now)

    me = WorkerName.here(NodeIdentity.load(data_dir, config.node_id), worker_index)
    worker = str(me)
    registry = Registry(
        store,
        now_ms=now_ms,
        idle_timeout_s=config.limits.idle_timeout_s,
        end_grace_s=config.end_grace_s,
    )
    hooks = {b.name: b.webhooks for b in config.buckets if b.webhooks is not None}
    webhooks = Webhooks(hooks, worker, config.limits.max_webhook_queue_events)
    await webhooks.start()
    low_latency = LowLatencyRegistry()  # LL-HLS pushes of this process (hls/live_endpoint.py)
    ingest = IngestServer(
        IngestDeps(
            config=config,
            store=store,
            storages=storages,
            credentials=config.access_keys,
            registry=registry,
            worker=worker,
            now_ms=now_ms,
            webhooks=webhooks if hooks else None,
            low_latency=low_latency,
        )
    )

    exporter = WorkerMetrics(data_dir, worker_index, config.workers)
    scrape = metrics_handler(exporter, config.metrics_token)
    per_channel = config.limits.max_metric_channels if config.metrics_per_channel else 0

    def live_figures() -> metrics.LiveFigures:
        figures = ingest.live_figures(per_channel)
        figures.webhook_queue = webhooks.queued
        return figures

    async def stale_closed(push: Push) -> None:
        channel = await store.get_channel(push.bucket, push.channel)
        if channel is not None and push.bucket in storages and push.end_ms is not None:
            _schedule_endlist(config, storages, registry, push.bucket, channel, push.end_ms)

    # Pushes still running under this node's id from an earlier run (kill -9, power loss):
    # end them now, before any publisher can reach us, so that an encoder reconnecting at
    # once is accepted (livechannel.fleet.node.earlier_lives says which).
    running_owners = await store.running_workers()
    for owner in earlier_lives(running_owners, me, config.workers, runs_here):
        for push in await store.close_worker_pushes(owner):
            log.warning("closed push of %s/%s left by this node's previous run (%s)",
                        push.bucket, push.channel, owner)  # fmt: skip
            await stale_closed(push)
    loop = asyncio.get_running_loop()
    rtmp_server = await loop.create_server(
        _behind_proxy(ingest.protocol, "rtmp", config),
        config.rtmp_listen.host,
        config.rtmp_listen.port,
        reuse_port=config.workers > 1 or None,
        backlog=LISTEN_BACKLOG,
    )
    rtmp_port = rtmp_server.sockets[0].getsockname()[1]
    rtmps_server: asyncio.Server | None = None
    rtmps_port: int | None = None
    tls: ServerTls | None = None
    if config.rtmps_listen is not None:
        tls = ServerTls(config.tls_cert, config.tls_key)
        rtmps_server = await loop.create_server(
            ingest.protocol,
            config.rtmps_listen.host,
            config.rtmps_listen.port,
            ssl=tls.context,
            ssl_handshake_timeout=config.limits.handshake_timeout_s,
            reuse_port=config.workers > 1 or None,
            backlog=LISTEN_BACKLOG,
        )
        rtmps_port = rtmps_server.sockets[0].getsockname()[1]
    http_port_cfg = config.http_listen.port
    # The HTTP port must be known before the app renders URLs; bind first, then build the app.
    http_sock = socket.create_server(
        (config.http_listen.host, http_port_cfg),
        family=socket.AF_INET6 if ":" in config.http_listen.host else socket.AF_INET,
        reuse_port=config.workers > 1,
    )
    http_port = http_sock.getsockname()[1]
    public_base_urls = {
        b.name: policy.public_base_url
        for b in config.buckets
        if (policy := bucket_policy(b)).public_base_url
    }
    urls = ServiceUrls(config.domain, rtmp_port, http_port, public_base_urls, rtmps_port)
    # LL-HLS requests that reach a worker without the push go to the one with it: fetched
    # from a sibling worker over its Unix socket, redirected to another node (api/owners.py).
    ll_buckets = [b.name for b in config.buckets if b.hls.part_duration_s > 0]
    owners = None
    if ll_buckets:
        owners = PushOwners(me, config.workers, socket_dir(data_dir), store, ll_buckets,
                            config.advertise_url)  # fmt: skip
    api_context = ApiContext(
        low_latency=low_latency,
        owners=owners,
        store=store,
        storages=storages,
        credentials=config.access_keys,
        urls=urls,
        now_ms=now_ms,
        on_channel_disabled=registry.kick,
        max_xml_body_bytes=config.limits.max_xml_body_bytes,
        max_http_requests=config.limits.max_http_requests,
        max_http_requests_per_ip=config.limits.max_http_requests_per_ip,
        http_body_timeout_s=config.limits.http_body_timeout_s,
        http_send_stall_timeout_s=config.limits.http_send_stall_timeout_s,
        status_loopback_unsigned=config.status_loopback_unsigned,
        region=config.region,
        metrics=scrape if config.metrics and config.metrics_listen is None else None,
        count_requests=config.metrics,
    )
    api = create_app(
        api_context, mount=console.mounter(api_context, config.limits.console_session_idle_s)
    )
    runner = web.AppRunner(
        api,
        access_log=None,
        handle_signals=False,
        keepalive_timeout=config.limits.http_idle_timeout_s,
        logger=http_server_logger(),  # malformed requests: one redacted line, no traceback
    )
    await runner.setup()
    http_handler = runner.server
    assert http_handler is not None
    http_server = await loop.create_server(
        _behind_proxy(
            lambda: SniffingProtocol(
                ingest.protocol, http_handler, ingest.gate, config.limits.handshake_timeout_s
            ),
            "http",
            config,
        ),
        sock=http_sock,
        backlog=LISTEN_BACKLOG,
    )
    sibling_server = await owners.listen(http_handler, LISTEN_BACKLOG) if owners else None
    # Cross-node notices and the leader lock (PostgreSQL); on SQLite the workers of the one
    # machine poll, every worker sweeps stale pushes, and worker 0 runs retention.
    notices: NoticeListener | None = None
    if isinstance(opened, PostgresStore):
        notices = NoticeListener(opened.url, registry.on_notice, registry.on_reconnect)
        notices.start()
        registry.signals = notices
    listener = notices

    def leads() -> bool:
        return listener.leader if listener is not None else True

    def up_since() -> int | None:
        return listener.up_since_ms if listener is not None else None

    store_watch = up_since if listener is not None else None  # SQLite: the sweep's own view

    def runs_retention() -> bool:
        return listener.leader if listener is not None else worker_index == 0

    metrics_runner, metrics_port = None, None
    if config.metrics and config.metrics_listen is not None:
        metrics_runner, metrics_port = await serve_metrics_only(
            config.metrics_listen.host, config.metrics_listen.port, scrape,
            reuse_port=config.workers > 1,
        )  # fmt: skip
    registry.start()

    sweeper = asyncio.create_task(
        _sweep_stale(store, worker, stale_closed, leads, store_watch), name="stale push sweeper"
    )
    retention: list[asyncio.Task[None]] = []
    for bucket in config.buckets:
        policy = bucket_policy(bucket)
        if policy.retention_hours is not None:
            sweeps = retention_loop(
                store, storages[bucket.name], bucket.name, policy.retention_hours,
                policy.public_base_url, now_ms, runs_retention,
            )  # fmt: skip
            retention.append(asyncio.create_task(sweeps, name=f"retention {bucket.name}"))
    if worker_index == 0:  # once per node: the others would only walk the same tree
        for name, local in local_storages.items():
            retention.append(asyncio.create_task(_remove_leftovers(name, local)))
    await _schedule_pending_endlists(config, store, storages, registry)
    log.info(
        "RTMP on %s:%d, HTTP (and RTMP) on %s:%d",
        config.rtmp_listen.host,
        rtmp_port,
        config.http_listen.host,
        http_port,
    )
    if rtmps_port is not None:
        log.info(
            "RTMPS on %s:%d", config.rtmps_listen.host if config.rtmps_listen else "", rtmps_port
        )
    # Only now, just before the `try` whose `finally` undoes them: a failed start leaves no
    # figures of a dead service in this process's scrapes.
    await exporter.start()
    if config.metrics:
        metrics.LIVE.sources.append(live_figures)
    lag_probe = asyncio.create_task(metrics.lag_probe(), name="event loop lag probe")
    if on_ready is not None:
        on_ready(Running(rtmp_port, http_port, urls, store, acls, metrics_port, rtmps_port, tls))
    tls_reloads = asyncio.create_task(_reload_tls(tls, reload_tls), name="TLS reloads")
    trims = asyncio.create_task(memory.trim_loop(), name="malloc trim")
    try:
        await shutdown.wait()
    finally:
        log.info("shutting down")
        tls_reloads.cancel()
        trims.cancel()
        rtmp_server.close()
        if rtmps_server is not None:
            rtmps_server.close()
        http_server.close()
        if sibling_server is not None:
            sibling_server.close()
        try:
            await asyncio.wait_for(ingest.close_all("server shutting down"), SHUTDOWN_TIMEOUT_S)
        except TimeoutError:
            log.error("shutdown: publishers not flushed within %.0f s", SHUTDOWN_TIMEOUT_S)
        await webhooks.close()  # after the pushes ended: their on_publish_done get a chance
        sweeper.cancel()
        for task in retention:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        with contextlib.suppress(asyncio.CancelledError):
            await sweeper
        await registry.stop()
        if notices is not None:
            await notices.stop()
        await runner.cleanup()
        if owners is not None:
            await owners.close()
        if metrics_runner is not None:
            await metrics_runner.cleanup()
        if live_figures in metrics.LIVE.sources:
            metrics.LIVE.sources.remove(live_figures)
        lag_probe.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await lag_probe
        await exporter.close()
        for storage in storages.values():
            await storage.close()
        await store.close()
        log.info("stopped")


def _behind_proxy(
    factory: Callable[[], asyncio.Protocol], listener: str, config: Config
) -> Callable[[], asyncio.Protocol]:
    """`factory`, behind a PROXY protocol header when the listener is configured for one."""
    if listener not in config.proxy_protocol:
        return factory
    timeout_s = config.limits.handshake_timeout_s
    return lambda: ProxyProtocolReader(factory, timeout_s)


def _schedule_endlist(
    config: Config,
    storages: Mapping[str, ObjectStorage],
    registry: Registry,
    bucket: str,
    ch: Channel,
    end_ms: int,
) -> None:
    """#EXT-X-ENDLIST for `ch` once the grace period after `end_ms` has passed."""
    cfg = ch.config
    target_s = live_target_s(cfg.frag_duration_s, config.limits.forced_cut_s(cfg.frag_duration_s))
    playlist = LivePlaylist(
        storages[bucket], bucket, ch.name, cfg.playlist_name, cfg.frag_count, target_s
    )
    delay_s = max(0.0, config.end_grace_s - (now_ms() - end_ms) / 1000)
    registry.schedule_endlist(playlist, delay_s=delay_s)


async def _remove_leftovers(bucket: str, storage: LocalStorage) -> None:
    """The temp files of segments a crash left half-written (livechannel.storage.
    local_writer): never listed, but they take disk space. In a thread: it walks the bucket."""
    try:
        removed = await asyncio.to_thread(storage.remove_leftovers)
    except OSError:
        log.exception("bucket %s: could not look for files left by a crash", bucket)
        return
    if removed:
        log.warning("bucket %s: removed %d half-written segment files left by a crash",
                    bucket, removed)  # fmt: skip


async def _schedule_pending_endlists(
    config: Config,
    store: MetadataStore,
    storages: Mapping[str, ObjectStorage],
    registry: Registry,
) -> None:
    """After a restart, channels whose publisher left still need their #EXT-X-ENDLIST."""
    for bucket in config.buckets:
        marker = ""
        while True:
            channels = await store.list_channels(bucket.name, "", marker, 1000)
            for ch in channels:
                if await store.live_push(bucket.name, ch.name) is not None:
                    continue
                last = await store.history(bucket.name, ch.name, 1)
                if not last or last[0].end_ms is None:
                    continue
                end_ms = last[0].end_ms
                _schedule_endlist(config, storages, registry, bucket.name, ch, end_ms)
            if len(channels) < 1000:
                break
            marker = channels[-1].name
