"""Build a bucket's ObjectStorage from its config table (the one place that knows backends).

A bucket's `[buckets.storage]` table picks the backend (`type = "local"`, the default, or
`"s3"`) and carries two options that apply to every backend (docs/storage.md):
`public_base_url` (players fetch objects there, e.g. a CDN, instead of from our API) and
`retention_hours` (segments older than that, named by no stored playlist, are deleted).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from livechannel.config import BucketConfig, ConfigError
from livechannel.storage.base import ObjectStorage
from livechannel.storage.local import PRIVATE_FILE_MODE, PUBLIC_FILE_MODE, LocalStorage
from livechannel.store.base import Acl

BUCKETS_DIR = "buckets"
LOCAL_KEYS = frozenset(
    {"type", "root", "fsync", "direct_io", "file_mode", "public_base_url", "retention_hours"}
)


@dataclass(frozen=True, slots=True)
class BucketPolicy:
    public_base_url: str = ""  # "" = our own API; else "https://cdn.example.com/live" (no "/")
    retention_hours: float | None = None  # None = keep segments forever


def _finite_number(value: object) -> bool:
    """A TOML int or float that is not inf/nan (TOML booleans are not numbers here)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _what(bucket: BucketConfig) -> str:
    return f"buckets.{bucket.name}.storage"


def bucket_policy(bucket: BucketConfig) -> BucketPolicy:
    table = bucket.storage
    base = table.get("public_base_url", "")
    if not isinstance(base, str) or (base and not base.startswith(("http://", "https://"))):
        raise ConfigError(f"{_what(bucket)}.public_base_url: expected an http(s):// URL")
    hours = table.get("retention_hours")
    if hours is not None and (not _finite_number(hours) or hours <= 0):
        raise ConfigError(f"{_what(bucket)}.retention_hours: expected a positive number of hours")
    return BucketPolicy(base.rstrip("/"), None if hours is None else float(hours))


def _file_mode(bucket: BucketConfig) -> int:
    """`file_mode = "0640"` (an octal string, as chmod takes it); by default owner-only for
    a private bucket, 0644 for a public one (local.py says why)."""
    value = bucket.storage.get("file_mode")
    if value is None:
        return PRIVATE_FILE_MODE if bucket.acl is Acl.PRIVATE else PUBLIC_FILE_MODE
    try:
        mode = int(value, 8) if isinstance(value, str) else -1
    except ValueError:
        mode = -1
    if not 0 <= mode <= 0o777 or not mode & 0o600 == 0o600:
        raise ConfigError(
            f'{_what(bucket)}.file_mode: expected an octal string such as "0640" '
            "that lets the owner read and write"
        )
    return mode


def make_storage(
    bucket: BucketConfig,
    data_dir: Path,
    env: Mapping[str, str] | None = None,
    home: Path | None = None,
) -> ObjectStorage:
    """`env` and `home` are where S3 settings are looked up the AWS way (s3_config.py);
    None = nowhere (obstore still tries instance roles and reads AWS_* variables itself)."""
    bucket_policy(bucket)  # refuse a bad option at start-up, whatever the backend
    table: Mapping[str, Any] = bucket.storage
    kind = str(table.get("type", "local"))
    if kind == "local":
        unknown = set(table) - LOCAL_KEYS
        if unknown:
            raise ConfigError(f"{_what(bucket)}: unknown keys: {', '.join(sorted(unknown))}")
        root = table.get("root") or data_dir / BUCKETS_DIR / bucket.name
        fsync, direct = table.get("fsync", False), table.get("direct_io", True)
        for name, value in (("fsync", fsync), ("direct_io", direct)):
            if not isinstance(value, bool):
                raise ConfigError(f"{_what(bucket)}.{name}: expected true or false")
        return LocalStorage(str(root), fsync=fsync, direct_io=direct, file_mode=_file_mode(bucket))
    if kind == "s3":
        # Imported here: the S3 library loads a native extension a local-only setup never needs.
        from livechannel.storage.s3 import S3Storage
        from livechannel.storage.s3_config import s3_settings

        settings = s3_settings(_what(bucket), table, env or {}, home)
        return S3Storage(settings)
    raise ConfigError(f"bucket {bucket.name}: unknown storage type {kind!r}")
