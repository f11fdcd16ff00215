"""The service's configuration as frozen dataclasses, units in their names; built by
loading.py, read by everything else."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from livechannel.auth.signing_v4 import DEFAULT_REGION
from livechannel.config.limits import Limits
from livechannel.ops.webhook_config import WebhookConfig
from livechannel.store.base import Acl, SegmentFormat

DEFAULT_RTMP_PORT = 1935
DEFAULT_HTTP_PORT = 8080
DEFAULT_BUCKET = "live"
WILDCARD_HOSTS = frozenset({"", "0.0.0.0", "::"})  # listen hosts that mean "every address"
LOG_FORMATS = ("text", "json")  # --log-format; rendered by livechannel.ops.logs


class ConfigError(Exception):
    """A configuration value is missing or invalid; the message names it."""


@dataclass(frozen=True, slots=True)
class Listen:
    host: str
    port: int

    @classmethod
    def parse(cls, text: str, what: str) -> Listen:
        host, sep, port = text.rpartition(":")
        if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ConfigError(f"{what}: expected HOST:PORT, got {text!r}")
        return cls(host.strip("[]") or "0.0.0.0", int(port))

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class HlsConfig:
    """A bucket's HLS output ([buckets.hls] in TOML); a channel's SegmentFormat element
    (docs/api.md) overrides `segment_format`."""

    segment_format: SegmentFormat = SegmentFormat.TS  # MPEG-TS stays the default
    # > 0 turns LL-HLS partial segments on (fMP4 only); 0: classic HLS.
    part_duration_s: float = 0.0


@dataclass(frozen=True, slots=True)
class BucketConfig:
    name: str
    acl: Acl = Acl.PRIVATE
    # Where the bucket's objects live: {} = the local filesystem under data_dir; otherwise a
    # table interpreted by `livechannel.storage.factory` (e.g. {"type": "s3", ...}).
    storage: Mapping[str, Any] = field(default_factory=dict)
    hls: HlsConfig = HlsConfig()
    # Whether the ACL was set by the configuration (TOML `acl`, --bucket-acl, env). Then it is
    # put in force at every start, over whatever PutBucketAcl stored; otherwise `acl` only
    # seeds a new bucket and the stored ACL stands (server.settle_acl).
    acl_configured: bool = False
    webhooks: WebhookConfig | None = None  # [buckets.webhooks] (livechannel.ops.webhooks)


@dataclass(frozen=True, slots=True)
class Config:
    data_dir: Path = Path("./data")
    rtmp_listen: Listen = Listen("0.0.0.0", DEFAULT_RTMP_PORT)
    http_listen: Listen = Listen("0.0.0.0", DEFAULT_HTTP_PORT)
    # RTMPS (RTMP in TLS 1.2+): a listener of its own, off unless set; needs tls_cert and
    # tls_key (PEM files, re-read on SIGHUP: livechannel/ingest/tls.py).
    rtmps_listen: Listen | None = None
    tls_cert: str = ""
    tls_key: str = ""
    # Host name users reach us by; an IP or "localhost" gives path-style URLs (as oss2 does).
    domain: str = "127.0.0.1"
    # Whether `domain` was configured; if not, `livechannel serve` listening on all addresses
    # puts this host's own address in the URLs it prints (livechannel.firstrun).
    domain_configured: bool = False
    buckets: tuple[BucketConfig, ...] = (BucketConfig(DEFAULT_BUCKET),)
    access_keys: Mapping[str, str] = field(default_factory=dict)  # id -> secret
    # After a publisher leaves, wait this long for a republish before writing #EXT-X-ENDLIST.
    end_grace_s: float = 10.0
    # A demo channel created at start-up so the printed ffmpeg command works at once.
    demo_channel: str = "demo"
    workers: int = 1
    # This node's id in push records; None = the one kept in `<data_dir>/node-id`
    # (livechannel.fleet.node). Set it where the data directory is not the node's own.
    node_id: str | None = None
    # Where players reach this node's HTTP API, e.g. "http://node-a.example.com:8080": another
    # node asked for an LL-HLS channel whose push runs here redirects its players there
    # (docs/hls.md, "Where it is served"). "": they get storage's classic playlist instead.
    advertise_url: str = ""
    log_level: str = "INFO"
    # The region V4 signatures (OSS4-HMAC-SHA256) are scoped to: clients sign for it
    # (oss2.Bucket(..., region="cn-hangzhou")); a request signed for another is refused.
    region: str = DEFAULT_REGION
    # The metadata store: "" = the SQLite file in data_dir; "sqlite:///path" another SQLite
    # file (one machine); "postgresql://user:pass@host:port/db" a database shared by many
    # nodes (livechannel/store/factory.py).
    store: str = ""
    # Listeners ("rtmp", "http") whose connections start with a PROXY protocol header (v1 or
    # v2) from a load balancer: the client's address is taken from it. Only enable it behind
    # a balancer that sends it; a client could otherwise claim any address.
    proxy_protocol: frozenset[str] = frozenset()
    log_format: str = "text"  # or "json": one object per line (livechannel.ops.logs)
    # GET /-/status from a loopback address without a signature. Off: any web page open in a
    # browser on the host could otherwise read it (docs/operations.md).
    status_loopback_unsigned: bool = False
    # GET /-/metrics: on the HTTP port, open (None, ""), or with a bearer token, or only on a
    # listener of its own (docs/operations.md).
    metrics_listen: Listen | None = None
    metrics_token: str = field(default="", repr=False)
    # Per-channel series (bucket, channel labels) for live channels, at most
    # limits.max_metric_channels of them.
    metrics_per_channel: bool = False
    # false: no /-/metrics, no timing of store and storage calls, no HTTP request counting
    # (what the benchmark's `nometrics` runs, to measure what metrics cost).
    metrics: bool = True
    limits: Limits = Limits()

    @property
    def default_bucket(self) -> str:
        return self.buckets[0].name

    def bucket(self, name: str) -> BucketConfig | None:
        return next((b for b in self.buckets if b.name == name), None)
