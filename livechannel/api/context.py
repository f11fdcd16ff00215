"""What the HTTP API needs from the rest of the service, handed in by `server.py`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from aiohttp import web

from livechannel.api.owners import PushOwners
from livechannel.auth.signing_v4 import DEFAULT_REGION
from livechannel.auth.urls import ServiceUrls
from livechannel.hls.live_endpoint import LowLatencyRegistry
from livechannel.storage.base import ObjectStorage
from livechannel.store.base import MetadataStore


@dataclass(frozen=True, slots=True)
class ApiContext:
    store: MetadataStore
    storages: Mapping[str, ObjectStorage]  # bucket name -> its object storage
    credentials: Mapping[str, str]  # AccessKeyId -> AccessKeySecret
    urls: ServiceUrls  # renders PublishUrls / PlayUrls
    now_ms: Callable[[], int]  # wall clock, injectable for tests
    # Called after a channel is disabled, so a publisher held by *this* process is kicked at
    # once; other processes see the store's kick flag on their next heartbeat.
    on_channel_disabled: Callable[[str, str], None] = lambda bucket, channel: None
    max_xml_body_bytes: int = 64 * 1024  # OSS bodies here are < 1 KiB; refuse anything huge
    max_http_requests: int = 1024  # in flight at once; beyond it 503 rather than a queue
    max_http_requests_per_ip: int = 128  # in flight from one address (config.Limits says why)
    http_body_timeout_s: float = 10.0  # a whole request body must arrive within this
    http_send_stall_timeout_s: float = 20.0  # a response piece not taken for this long: cut
    # The region V4 signatures must be scoped to (`region` in the configuration).
    region: str = DEFAULT_REGION
    # GET /-/metrics on this port (livechannel.ops.metrics_workers); None: not here.
    metrics: Callable[[web.Request], Awaitable[web.StreamResponse]] | None = None
    count_requests: bool = True  # HTTP requests counted and timed for /-/metrics
    status_loopback_unsigned: bool = False  # GET /-/status from loopback without a signature
    # LL-HLS pushes this process owns: their playlists and parts are answered from memory.
    low_latency: LowLatencyRegistry | None = None
    # Who else owns a push (another worker or node), for LL-HLS buckets (api/owners.py).
    owners: PushOwners | None = None
