"""Build a bucket's ObjectStorage from its config table (the one place that knows backends)."""

from __future__ import annotations

from pathlib import Path

from livechannel.config import BucketConfig, ConfigError
from livechannel.storage.base import ObjectStorage
from livechannel.storage.local import LocalStorage

BUCKETS_DIR = "buckets"


def make_storage(bucket: BucketConfig, data_dir: Path) -> ObjectStorage:
    kind = str(bucket.storage.get("type", "local"))
    if kind == "local":
        root = bucket.storage.get("root") or data_dir / BUCKETS_DIR / bucket.name
        return LocalStorage(str(root))
    raise ConfigError(f"bucket {bucket.name}: unknown storage type {kind!r}")
