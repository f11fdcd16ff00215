"""The API's access keys when none are configured: generated once, kept in the data
directory."""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import replace

from livechannel.config.settings import Config, ConfigError

CREDENTIALS_FILE = "credentials.json"  # generated on first start, mode 0600


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
