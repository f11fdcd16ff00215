"""Configuration: frozen dataclasses with units in their names, loaded and validated once.

Precedence, lowest first: built-in defaults < TOML file (`--config`) < environment
(`LIVECHANNEL_*`) < command-line flags. Nothing below `server.py` reads the environment.

settings.py holds the dataclasses, limits.py the limits with their reasons, loading.py the
layers and their checks, credentials.py the generated access keys; import them from here.
"""

from livechannel.config.credentials import CREDENTIALS_FILE, ensure_credentials
from livechannel.config.limits import Limits
from livechannel.config.loading import check_store_url, load
from livechannel.config.settings import (
    DEFAULT_BUCKET,
    DEFAULT_HTTP_PORT,
    DEFAULT_RTMP_PORT,
    LOG_FORMATS,
    WILDCARD_HOSTS,
    BucketConfig,
    Config,
    ConfigError,
    HlsConfig,
    Listen,
)

__all__ = [
    "CREDENTIALS_FILE",
    "DEFAULT_BUCKET",
    "DEFAULT_HTTP_PORT",
    "DEFAULT_RTMP_PORT",
    "LOG_FORMATS",
    "WILDCARD_HOSTS",
    "BucketConfig",
    "Config",
    "ConfigError",
    "HlsConfig",
    "Limits",
    "Listen",
    "check_store_url",
    "ensure_credentials",
    "load",
]
