"""Configuration: frozen dataclasses with units in their names, loaded and validated once.

Precedence, lowest first: built-in defaults < TOML file (`--config`) < environment
(`LIVECHANNEL_*`) < command-line flags. Nothing below `server.py` reads the environment.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from livechannel.auth.signing_v4 import DEFAULT_REGION
from livechannel.fleet.node import NodeIdError, check_node_id
from livechannel.ops.webhook_config import WebhookConfig, webhook_config
from livechannel.store.base import Acl, SegmentFormat

DEFAULT_RTMP_PORT = 1935
DEFAULT_HTTP_PORT = 8080
DEFAULT_BUCKET = "live"
CREDENTIALS_FILE = "credentials.json"  # generated on first start, mode 0600
BOOL_KEYS = (
    "status_loopback_unsigned",
    "metrics_per_channel",
    "metrics",
)  # top-level true/false settings
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
class Limits:
    """Every limit the edges enforce, each with the reason for its default."""

    # Both ports together. A busy box serves hundreds of publishers; beyond this a new
    # connection is closed at once (logged) rather than starving the process of descriptors.
    max_connections: int = 2000
    # One address rarely needs more than a handful of encoders; stops one host hogging slots.
    max_connections_per_ip: int = 64
    # Real clients finish the handshake in milliseconds; a port scanner never does. Also the
    # wait for the first byte on the shared HTTP/RTMP port.
    handshake_timeout_s: float = 10.0
    # ffmpeg/OBS publish within a second of connecting; idle sockets before publish are junk.
    publish_timeout_s: float = 30.0
    # No media for this long means the encoder died without closing (half-open TCP).
    idle_timeout_s: float = 30.0
    # Segments waiting for storage per publish before we stop reading that publisher's socket.
    upload_queue_segments: int = 8
    # Segments waiting for storage across all publishers of one worker, in bytes: ~30 s of a
    # storage stall at 400 publishers of 2.6 Mbit/s. Past it, publishers holding queued
    # segments are paused too (hls/upload_budget.py), so a stall cannot take the box's memory.
    max_upload_queue_bytes: int = 512 * 1024 * 1024
    # Segment-index rows one push holds while the metadata store is unreachable (they are
    # written when it is back; segments and playlists go on meanwhile): 256 rows are 8.5 min
    # of 2 s segments at ~300 bytes each, ~75 KB per push. Past it the push waits (its
    # publisher is paused) instead of growing memory.
    max_pending_index_segments: int = 256
    # A segment over this is cut early (a 50 Mbit/s stream makes ~31 MB per 5 s).
    max_segment_bytes: int = 64 * 1024 * 1024
    # The floor of the forced cut when keyframes never come (max(2·FD, 60 s): OSS API
    # reference, PutLiveChannel); see `forced_cut_s`.
    max_segment_s: int = 60
    # Largest RTMP message we reassemble (a 1080p high-bitrate keyframe is ~1-2 MB).
    max_rtmp_message_bytes: int = 8 * 1024 * 1024
    # Largest Set Chunk Size a publisher may ask for: the 24-bit message length can never fill
    # a bigger chunk; real clients use 128..65536.
    max_rtmp_chunk_size: int = 0xFFFFFF
    # Largest video/audio frame (one FLV tag body); one frame is at most one RTMP message.
    max_access_unit_bytes: int = 8 * 1024 * 1024
    # A new publish is refused ("server busy") while this worker's heartbeat rounds finish
    # this late (event loop and metadata store together): the worker is overloaded (at 5 s of
    # silence a worker on another host would sweep its pushes; livechannel/fleet/liveness.py), and a
    # newcomer would push every stream on it further behind.
    max_heartbeat_lag_s: float = 1.0
    # Snapshots (OSS API reference, PutLiveChannel, Snapshot) in flight in this process, being
    # encoded (~5 ms of a core each at 720p) or waiting for a snapshot thread. Each holds its
    # keyframe (~100-300 KB at 2-4 Mbit/s; at worst max_access_unit_bytes, so 16 x 8 MiB): 16
    # absorb the bursts of many channels' keyframes arriving together; a snapshot due beyond
    # this is skipped and counted, so a box short of CPU sheds snapshots, not ingest.
    max_snapshot_jobs: int = 16
    # Per-channel metric series (metrics_per_channel): each live channel adds 3 series; 500
    # channels keep a scrape under ~150 KB and a Prometheus server's load per node modest.
    # Channels beyond it are left out (and counted), never an unbounded label set.
    max_metric_channels: int = 500
    # Webhook notifications waiting to be sent, per process: ~a minute of every event of 200
    # publishers with 5 s segments (3 events each per segment) when the receiver is down for
    # less than retry_for_s. Past it new ones are dropped (counted, logged): never memory.
    max_webhook_queue_events: int = 10_000
    # Concurrent HTTP requests in flight; beyond this we answer 503 at once instead of queueing.
    max_http_requests: int = 1024
    # In flight from one client address: an eighth of the slots, so a few hosts that stop
    # reading (or trickle bodies) cannot take the API from everyone. Behind a proxy without
    # the PROXY protocol every request shares the proxy's address: raise it to
    # max_http_requests there.
    max_http_requests_per_ip: int = 128
    # A request body (XML, < 64 KiB) must arrive whole within this; a trickled body holds a
    # request slot, so it is answered 400 RequestTimeout and the connection closed.
    http_body_timeout_s: float = 10.0
    # A response body (a segment, a snapshot) is sent in 64 KiB pieces; a client that takes
    # none of a piece for this long (it stopped reading: ~3 KiB/s is the floor) is cut off,
    # freeing its request slot.
    http_send_stall_timeout_s: float = 20.0
    # LiveChannel XML bodies are < 1 KiB; anything this big is not a client of ours.
    max_xml_body_bytes: int = 64 * 1024
    # An HTTP connection idle (or stuck mid-request, slowloris) this long is closed.
    http_idle_timeout_s: float = 75.0
    # A browser console left alone this long is signed out: a forgotten tab or a stolen
    # cookie is worth little. Activity renews it, up to 12 h after sign-in.
    console_session_idle_s: float = 1800.0

    def forced_cut_s(self, frag_duration_s: int) -> int:
        """A segment with no keyframe is cut after max(2·FragDuration, 60 s); the 60 s is
        `max_segment_s` (OSS API reference, PutLiveChannel)."""
        return max(self.max_segment_s, 2 * frag_duration_s)


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


STORE_SCHEMES = ("sqlite://", "postgresql://", "postgres://")


def check_store_url(url: str) -> str:
    """ "" (the default SQLite file), sqlite:///path, or a PostgreSQL URL."""
    if url and not url.startswith(STORE_SCHEMES):
        raise ConfigError(
            f"store: expected sqlite:///PATH or postgresql://USER:PASS@HOST:PORT/DB, got "
            f"{url.split('://')[0]!r}..."  # never echo a password
        )
    if url.startswith("sqlite://") and not url.removeprefix("sqlite://").startswith("/"):
        raise ConfigError("store: a SQLite URL names an absolute path: sqlite:///var/lib/x.db")
    return url


PROXY_LISTENERS = frozenset({"rtmp", "http"})


def _proxy_listeners(value: object) -> frozenset[str]:
    """true/"all" = both listeners, false/"" = none, or names: "rtmp,http", ["rtmp"]."""
    if isinstance(value, bool):
        return PROXY_LISTENERS if value else frozenset()
    names = value if isinstance(value, list) else str(value).replace(" ", "").split(",")
    words = {str(n).lower() for n in names if str(n)}
    if words <= {"all", "true", "yes", "on", "1"} and words:
        return PROXY_LISTENERS
    if words <= {"false", "no", "off", "0", "none"}:
        return frozenset()
    if not words <= PROXY_LISTENERS:
        raise ConfigError(f"proxy_protocol: expected true, false or rtmp/http, got {value!r}")
    return frozenset(words)


def _env_overrides(env: Mapping[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    simple = {
        "LIVECHANNEL_DATA_DIR": "data_dir",
        "LIVECHANNEL_RTMP_LISTEN": "rtmp_listen",
        "LIVECHANNEL_HTTP_LISTEN": "http_listen",
        "LIVECHANNEL_RTMPS_LISTEN": "rtmps_listen",
        "LIVECHANNEL_TLS_CERT": "tls_cert",
        "LIVECHANNEL_TLS_KEY": "tls_key",
        "LIVECHANNEL_DOMAIN": "domain",
        "LIVECHANNEL_WORKERS": "workers",
        "LIVECHANNEL_NODE_ID": "node_id",
        "LIVECHANNEL_REGION": "region",
        "LIVECHANNEL_LOG_LEVEL": "log_level",
        "LIVECHANNEL_STORE": "store",
        "LIVECHANNEL_PROXY_PROTOCOL": "proxy_protocol",
        "LIVECHANNEL_LOG_FORMAT": "log_format",
        "LIVECHANNEL_METRICS_LISTEN": "metrics_listen",
        "LIVECHANNEL_METRICS_TOKEN": "metrics_token",
    }
    for var, key in simple.items():
        if env.get(var):
            out[key] = env[var]
    if env.get("LIVECHANNEL_BUCKET") or env.get("LIVECHANNEL_BUCKET_ACL"):
        out["bucket"] = env.get("LIVECHANNEL_BUCKET") or None
        out["bucket_acl"] = env.get("LIVECHANNEL_BUCKET_ACL") or None
    key_id, secret = env.get("LIVECHANNEL_ACCESS_KEY_ID"), env.get("LIVECHANNEL_ACCESS_KEY_SECRET")
    if bool(key_id) != bool(secret):
        raise ConfigError("set both LIVECHANNEL_ACCESS_KEY_ID and LIVECHANNEL_ACCESS_KEY_SECRET")
    if key_id and secret:
        out["access_keys"] = {key_id: secret}
    return out


def _acl(text: str, what: str) -> Acl:
    try:
        return Acl(text)
    except ValueError:
        allowed = ", ".join(a.value for a in Acl)
        raise ConfigError(f"{what}: expected one of {allowed}, got {text!r}") from None


def _hls(raw: Any) -> HlsConfig:
    """A bucket's [buckets.hls] table."""
    if not isinstance(raw, Mapping):
        raise ConfigError("buckets.hls: expected a table")
    unknown = set(raw) - {"segment_format", "part_duration_s"}
    if unknown:
        raise ConfigError(f"buckets.hls: unknown keys: {', '.join(sorted(unknown))}")
    text = str(raw.get("segment_format", SegmentFormat.TS.value))
    try:
        segment_format = SegmentFormat(text)
    except ValueError:
        raise ConfigError(
            f"buckets.hls.segment_format: expected ts or fmp4, got {text!r}"
        ) from None
    part = raw.get("part_duration_s", 0.0)
    if isinstance(part, bool) or not isinstance(part, int | float) or not 0 <= part <= 5:
        raise ConfigError(f"buckets.hls.part_duration_s: expected 0..5 seconds, got {part!r}")
    if part and segment_format is not SegmentFormat.FMP4:
        raise ConfigError("buckets.hls.part_duration_s: LL-HLS parts need segment_format = fmp4")
    return HlsConfig(segment_format, float(part))


def _webhooks(raw: Any, what: str) -> WebhookConfig | None:
    try:
        return webhook_config(raw, what)
    except ValueError as e:
        raise ConfigError(str(e)) from None


def _from_mapping(raw: Mapping[str, Any], base: Config) -> Config:
    """Apply one layer (TOML table, env, or flags) on top of `base`."""
    known = {f.name for f in fields(Config)} - {"domain_configured"} | {"bucket", "bucket_acl"}
    unknown = set(raw) - known
    if unknown:
        raise ConfigError(f"unknown configuration keys: {', '.join(sorted(unknown))}")
    cfg = base
    if "data_dir" in raw:
        cfg = replace(cfg, data_dir=Path(str(raw["data_dir"])))
    for key in ("rtmp_listen", "http_listen", "rtmps_listen"):
        if key in raw:
            cfg = replace(cfg, **{key: Listen.parse(str(raw[key]), key)})  # type: ignore[arg-type]
    for key in ("tls_cert", "tls_key"):
        if key in raw:
            cfg = replace(cfg, **{key: str(raw[key])})  # type: ignore[arg-type]
    if "domain" in raw:
        cfg = replace(cfg, domain=str(raw["domain"]), domain_configured=True)
    if "workers" in raw:
        try:
            workers = int(raw["workers"])
        except ValueError:
            raise ConfigError(f"workers: expected a whole number, got {raw['workers']!r}") from None
        if workers < 1:
            raise ConfigError("workers: must be at least 1")
        cfg = replace(cfg, workers=workers)
    for key in ("log_level", "demo_channel"):
        if key in raw:
            cfg = replace(cfg, **{key: str(raw[key])})  # type: ignore[arg-type]
    if "node_id" in raw:
        try:
            cfg = replace(cfg, node_id=check_node_id(str(raw["node_id"]), "node_id"))
        except NodeIdError as e:
            raise ConfigError(str(e)) from None
    if "region" in raw:
        region = str(raw["region"])
        # Region ids as OSS names them: cn-hangzhou, us-west-1, ap-southeast-1.
        if not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,62}", region):
            raise ConfigError(f"region: expected a region id such as cn-hangzhou, got {region!r}")
        cfg = replace(cfg, region=region)
    if "store" in raw:
        cfg = replace(cfg, store=check_store_url(str(raw["store"])))
    if "proxy_protocol" in raw:
        cfg = replace(cfg, proxy_protocol=_proxy_listeners(raw["proxy_protocol"]))
    if raw.get("metrics_listen"):
        cfg = replace(
            cfg, metrics_listen=Listen.parse(str(raw["metrics_listen"]), "metrics_listen")
        )
    if "metrics_token" in raw:
        cfg = replace(cfg, metrics_token=str(raw["metrics_token"]))
    if "log_format" in raw:
        if raw["log_format"] not in LOG_FORMATS:
            raise ConfigError(f"log_format: expected text or json, got {raw['log_format']!r}")
        cfg = replace(cfg, log_format=str(raw["log_format"]))
    for key in BOOL_KEYS:
        if key in raw:
            if not isinstance(raw[key], bool):
                raise ConfigError(f"{key}: expected true or false, got {raw[key]!r}")
            cfg = replace(cfg, **{key: raw[key]})
    if "end_grace_s" in raw:
        cfg = replace(cfg, end_grace_s=float(raw["end_grace_s"]))
    if "buckets" in raw:
        buckets = tuple(
            BucketConfig(
                str(b["name"]),
                _acl(str(b.get("acl", "private")), "buckets.acl"),
                dict(b.get("storage", {})),
                _hls(b.get("hls", {})),
                acl_configured="acl" in b,
                webhooks=_webhooks(b.get("webhooks"), f"buckets.{b['name']}.webhooks"),
            )
            for b in raw["buckets"]
        )
        if not buckets:
            raise ConfigError("buckets: at least one bucket is needed")
        cfg = replace(cfg, buckets=buckets)
    if raw.get("bucket") or raw.get("bucket_acl"):
        first = cfg.buckets[0]
        name = raw.get("bucket") or first.name
        acl = _acl(raw["bucket_acl"], "bucket ACL") if raw.get("bucket_acl") else first.acl
        pinned = first.acl_configured or bool(raw.get("bucket_acl"))
        # The bucket's storage table stays: a flag that sets the ACL must not move an S3
        # bucket to the local disk.
        first = replace(first, name=name, acl=acl, acl_configured=pinned)
        cfg = replace(cfg, buckets=(first, *cfg.buckets[1:]))
    if "access_keys" in raw:
        keys = raw["access_keys"]
        if isinstance(keys, list):  # TOML: [[access_keys]] id = .., secret = ..
            keys = {str(k["id"]): str(k["secret"]) for k in keys}
        cfg = replace(cfg, access_keys=dict(keys))
    if "limits" in raw:
        limit_names = {f.name for f in fields(Limits)}
        bad = set(raw["limits"]) - limit_names
        if bad:
            raise ConfigError(f"unknown limits: {', '.join(sorted(bad))}")
        kinds = {f.name: f.type for f in fields(Limits)}
        for name, value in raw["limits"].items():
            wanted = (int,) if kinds[name] == "int" else (int, float)
            if isinstance(value, bool) or not isinstance(value, wanted) or value <= 0:
                raise ConfigError(
                    f"limits.{name}: expected a positive {kinds[name]}, got {value!r}"
                )
        cfg = replace(cfg, limits=replace(cfg.limits, **raw["limits"]))
    return cfg


def load(config_file: str | None, env: Mapping[str, str], flags: Mapping[str, Any]) -> Config:
    """Build the Config from all layers. Does not touch the data directory."""
    cfg = Config()
    if config_file:
        try:
            with open(config_file, "rb") as f:
                cfg = _from_mapping(tomllib.load(f), cfg)
        except (OSError, tomllib.TOMLDecodeError) as e:
            raise ConfigError(f"config file {config_file}: {e}") from None
    cfg = _from_mapping(_env_overrides(env), cfg)
    cfg = _from_mapping({k: v for k, v in flags.items() if v is not None}, cfg)
    if cfg.rtmps_listen is not None and not (cfg.tls_cert and cfg.tls_key):
        raise ConfigError("rtmps_listen needs tls_cert and tls_key (PEM files)")
    return cfg


def ensure_credentials(cfg: Config) -> Config:
    """Keys given by config/env win; otherwise load or create `<data_dir>/credentials.json`.

    The file is created owner-only (0600) before any secret is written to it.
    """
    if cfg.access_keys:
        return cfg
    path = cfg.data_dir / CREDENTIALS_FILE
    if path.exists():
        try:
            data = json.loads(path.read_text())
            keys = {str(k["id"]): str(k["secret"]) for k in data["access_keys"]}
        except (ValueError, KeyError, TypeError) as e:
            raise ConfigError(f"{path}: unreadable credentials file ({e})") from None
        return replace(cfg, access_keys=keys)
    cfg.data_dir.mkdir(parents=True, exist_ok=True)
    key_id = "LC" + secrets.token_hex(8).upper()
    secret = secrets.token_urlsafe(30)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({"access_keys": [{"id": key_id, "secret": secret}]}, f, indent=2)
    return replace(cfg, access_keys={key_id: secret})
