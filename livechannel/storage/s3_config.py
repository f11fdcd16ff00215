"""An S3 bucket's settings from its `[buckets.storage]` table, with the AWS SDK conventions.

Every value may come from the table; what it leaves out is found where the AWS SDKs and CLI
look, in the same order, so an operator's existing setup works unchanged:

- credentials: the table (`access_key_id`, `secret_access_key`, `session_token`), then
  `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` / `AWS_SESSION_TOKEN`, then the profile
  (`profile`, else `AWS_PROFILE`, else "default") of the shared credentials file
  (`AWS_SHARED_CREDENTIALS_FILE`, else `~/.aws/credentials`). With none of these, obstore's
  own chain runs (EC2/ECS instance roles, web identity tokens).
- region: the table, `AWS_REGION`, `AWS_DEFAULT_REGION`, the profile's `region` in the config
  file (`AWS_CONFIG_FILE`, else `~/.aws/config`), then "us-east-1".
- endpoint: the table, `AWS_ENDPOINT_URL_S3`, `AWS_ENDPOINT_URL`; none means AWS itself.

The environment is handed in (`env`), never read here, so tests and `server.py` decide it.
"""

from __future__ import annotations

import configparser
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from livechannel.config import ConfigError

DEFAULT_REGION = "us-east-1"  # what the AWS SDKs use when nothing names a region
# A dead endpoint must surface as an error (and the publisher be slowed) within seconds.
DEFAULT_CONNECT_TIMEOUT_S = 5.0
# No response byte for this long = the request is lost; 64 MiB segments still upload in time
# because the timer covers waiting for the answer, not sending the body.
DEFAULT_READ_TIMEOUT_S = 30.0
# Hard cap on one request, body included: a 64 MiB segment at 8 Mbit/s takes ~70 s.
DEFAULT_REQUEST_TIMEOUT_S = 120.0
# obstore retries blips itself (5xx, resets); longer outages go back to the upload pipeline,
# which retries forever and reports them in the push's health.
DEFAULT_MAX_RETRIES = 3
DEFAULT_RETRY_TIMEOUT_S = 20.0  # obstore gives up retrying one call after this long
ADDRESSING_STYLES = ("auto", "virtual", "path")  # auto: virtual on AWS, path elsewhere

_TABLE_KEYS = frozenset(
    {
        "type", "bucket", "endpoint", "region", "prefix", "addressing_style", "profile",
        "access_key_id", "secret_access_key", "session_token", "connect_timeout_s",
        "read_timeout_s", "request_timeout_s", "max_retries", "retry_timeout_s",
        # per-bucket policy, read by the factory for every backend
        "public_base_url", "retention_hours",
    }
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class S3Settings:
    bucket: str
    region: str = DEFAULT_REGION
    endpoint: str = ""  # "" = AWS S3 in `region`
    prefix: str = ""  # key prefix inside the S3 bucket ("" or ending without "/")
    virtual_hosted: bool = True
    access_key_id: str = ""
    secret_access_key: str = field(default="", repr=False)
    session_token: str = field(default="", repr=False)
    connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S
    read_timeout_s: float = DEFAULT_READ_TIMEOUT_S
    request_timeout_s: float = DEFAULT_REQUEST_TIMEOUT_S
    max_retries: int = DEFAULT_MAX_RETRIES
    retry_timeout_s: float = DEFAULT_RETRY_TIMEOUT_S

    @property
    def allow_http(self) -> bool:
        return self.endpoint.startswith("http://")


def _text(table: Mapping[str, Any], key: str, what: str) -> str:
    value = table.get(key, "")
    if not isinstance(value, str):
        raise ConfigError(f"{what}.{key}: expected a string, got {value!r}")
    return value


def _positive(table: Mapping[str, Any], key: str, default: float, what: str) -> float:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ConfigError(f"{what}.{key}: expected a positive number, got {value!r}")
    return float(value)


def _ini(path: str) -> configparser.RawConfigParser:
    parser = configparser.RawConfigParser()
    try:
        parser.read(path, encoding="utf-8")
    except (configparser.Error, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: unreadable AWS file ({e})") from None
    return parser


def _in_home(home: Path | None, name: str) -> str:
    return str(home / ".aws" / name) if home is not None else ""


def _profile_value(parser: configparser.RawConfigParser, sections: list[str], key: str) -> str:
    for section in sections:
        if parser.has_option(section, key):
            return parser.get(section, key).strip()
    return ""


def s3_settings(
    what: str, table: Mapping[str, Any], env: Mapping[str, str], home: Path | None
) -> S3Settings:
    """Validate `table` (named `what` in messages) and fill the gaps the AWS way; `home`
    None = read no AWS files (an explicit AWS_*_FILE in `env` is still read)."""
    unknown = set(table) - _TABLE_KEYS
    if unknown:
        raise ConfigError(f"{what}: unknown keys: {', '.join(sorted(unknown))}")
    bucket = _text(table, "bucket", what)
    if not bucket:
        raise ConfigError(f"{what}.bucket: the S3 bucket name is required")
    style = _text(table, "addressing_style", what) or "auto"
    if style not in ADDRESSING_STYLES:
        raise ConfigError(f"{what}.addressing_style: expected one of {ADDRESSING_STYLES}")
    endpoint = (
        _text(table, "endpoint", what)
        or env.get("AWS_ENDPOINT_URL_S3", "")
        or env.get("AWS_ENDPOINT_URL", "")
    ).rstrip("/")
    if endpoint and not endpoint.startswith(("http://", "https://")):
        raise ConfigError(f"{what}.endpoint: expected an http:// or https:// URL")
    prefix = _text(table, "prefix", what).strip("/")
    if any(part in ("", ".", "..") for part in prefix.split("/")) and prefix:
        raise ConfigError(f"{what}.prefix: empty, '.' and '..' path segments are not allowed")

    profile = _text(table, "profile", what) or env.get("AWS_PROFILE", "") or "default"
    key_id = _text(table, "access_key_id", what)
    secret = _text(table, "secret_access_key", what)
    token = _text(table, "session_token", what)
    if bool(key_id) != bool(secret):
        raise ConfigError(f"{what}: set both access_key_id and secret_access_key, or neither")
    if not key_id and env.get("AWS_ACCESS_KEY_ID") and env.get("AWS_SECRET_ACCESS_KEY"):
        key_id, secret = env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"]
        token = env.get("AWS_SESSION_TOKEN", "")
    path = env.get("AWS_SHARED_CREDENTIALS_FILE") or _in_home(home, "credentials")
    if not key_id and path:
        creds = _ini(path)
        key_id = _profile_value(creds, [profile], "aws_access_key_id")
        secret = _profile_value(creds, [profile], "aws_secret_access_key")
        token = _profile_value(creds, [profile], "aws_session_token")
        if bool(key_id) != bool(secret):
            raise ConfigError(f"{path} [{profile}]: needs both aws_access_key_id and secret")

    region = _text(table, "region", what) or env.get("AWS_REGION", "")
    region = region or env.get("AWS_DEFAULT_REGION", "")
    path = env.get("AWS_CONFIG_FILE") or _in_home(home, "config")
    if not region and path:
        sections = [profile] if profile == "default" else [f"profile {profile}", profile]
        region = _profile_value(_ini(path), sections, "region")

    max_retries = table.get("max_retries", DEFAULT_MAX_RETRIES)
    if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
        raise ConfigError(f"{what}.max_retries: expected a whole number >= 0")
    return S3Settings(
        bucket=bucket,
        region=region or DEFAULT_REGION,
        endpoint=endpoint,
        prefix=prefix,
        virtual_hosted=style == "virtual" or (style == "auto" and not endpoint),
        access_key_id=key_id,
        secret_access_key=secret,
        session_token=token,
        connect_timeout_s=_positive(table, "connect_timeout_s", DEFAULT_CONNECT_TIMEOUT_S, what),
        read_timeout_s=_positive(table, "read_timeout_s", DEFAULT_READ_TIMEOUT_S, what),
        request_timeout_s=_positive(table, "request_timeout_s", DEFAULT_REQUEST_TIMEOUT_S, what),
        max_retries=max_retries,
        retry_timeout_s=_positive(table, "retry_timeout_s", DEFAULT_RETRY_TIMEOUT_S, what),
    )
