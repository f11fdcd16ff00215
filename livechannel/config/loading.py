"""The configuration's layers, lowest first: built-in defaults < TOML file (`--config`) <
environment (`LIVECHANNEL_*`) < command-line flags, each checked as it is applied."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import fields, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from livechannel.config.limits import Limits
from livechannel.config.settings import (
    LOG_FORMATS,
    BucketConfig,
    Config,
    ConfigError,
    HlsConfig,
    Listen,
)
from livechannel.fleet.node import NodeIdError, check_node_id
from livechannel.ops.webhook_config import WebhookConfig, webhook_config
from livechannel.store.base import Acl, SegmentFormat

BOOL_KEYS = (
    "status_loopback_unsigned",
    "metrics_per_channel",
    "metrics",
)  # top-level true/false settings


STORE_SCHEMES = ("sqlite://", "postgresql://", "postgres://")


def check_advertise_url(url: str) -> str:
    """An http(s) origin (scheme, host, optional port) that players can reach; a request's
    path and query are appended to it as they came."""
    parts = urlsplit(url)
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or parts.path.strip("/")
        or parts.query
        or parts.fragment
        or parts.username
    ):
        raise ConfigError(f"advertise_url: expected http(s)://HOST[:PORT], got {url!r}")
    try:
        parts.port  # noqa: B018 - raises on a port out of range
    except ValueError:
        raise ConfigError(f"advertise_url: bad port in {url!r}") from None
    return f"{parts.scheme}://{parts.netloc}"


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
        "LIVECHANNEL_ADVERTISE_URL": "advertise_url",
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
    if raw.get("advertise_url"):
        cfg = replace(cfg, advertise_url=check_advertise_url(str(raw["advertise_url"])))
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
