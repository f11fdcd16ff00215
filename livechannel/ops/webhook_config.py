"""A bucket's `[buckets.webhooks]` table (docs/operations.md, Webhooks), validated at start.

    [buckets.webhooks]
    url = "http://127.0.0.1:9000/hooks"   # every event is POSTed here as JSON
    secret = "..."                        # key of the body's HMAC-SHA256 signature
    timeout_s = 3.0                       # per request; on_publish refuses past it
    retry_for_s = 60.0                    # notifications: retried this long, then dropped
    events = ["on_publish", "on_publish_done", ...]   # default: all of EVENTS

The URL comes from the operator's configuration only: no API call sets a hook URL, so an API
user cannot make the server call addresses of its choosing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

ON_PUBLISH = "on_publish"  # asked before a publish is accepted: 2xx allows
# Notifications: never block ingest.
NOTIFICATIONS = ("on_publish_done", "on_segment", "on_playlist", "on_snapshot", "on_stream_health")
EVENTS = (ON_PUBLISH, *NOTIFICATIONS)
DEFAULT_TIMEOUT_S = 3.0  # an auth backend answers in milliseconds; a publisher waits this long
MAX_TIMEOUT_S = 30.0  # RTMP clients give up on a publish answer after ~30 s anyway
DEFAULT_RETRY_FOR_S = 60.0  # a receiver restart fits; beyond it the event is stale anyway
MAX_RETRY_FOR_S = 3600.0
_KEYS = frozenset({"url", "secret", "timeout_s", "retry_for_s", "events"})


@dataclass(frozen=True, slots=True)
class WebhookConfig:
    url: str
    secret: str = field(repr=False)
    timeout_s: float = DEFAULT_TIMEOUT_S
    retry_for_s: float = DEFAULT_RETRY_FOR_S
    events: frozenset[str] = frozenset(EVENTS)


def _seconds(raw: Mapping[str, Any], key: str, default: float, top: float, what: str) -> float:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= top:
        raise ValueError(f"{what}.{key}: expected seconds in (0, {top:g}], got {value!r}")
    return float(value)


def webhook_config(raw: Any, what: str) -> WebhookConfig | None:
    """Parse the table (None when absent); ValueError names what is wrong."""
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise ValueError(f"{what}: expected a table")
    unknown = set(raw) - _KEYS
    if unknown:
        raise ValueError(f"{what}: unknown keys: {', '.join(sorted(unknown))}")
    url = raw.get("url")
    if not isinstance(url, str):
        raise ValueError(f"{what}.url: expected an http(s):// URL, got {url!r}")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{what}.url: expected an http(s):// URL, got {url!r}")
    secret = raw.get("secret")
    if not isinstance(secret, str) or not secret:
        raise ValueError(f"{what}.secret: required (the key receivers verify signatures with)")
    events = raw.get("events", list(EVENTS))
    if not isinstance(events, list) or not set(events) <= set(EVENTS):
        raise ValueError(f"{what}.events: expected a list of {', '.join(EVENTS)}")
    return WebhookConfig(
        url,
        secret,
        _seconds(raw, "timeout_s", DEFAULT_TIMEOUT_S, MAX_TIMEOUT_S, what),
        _seconds(raw, "retry_for_s", DEFAULT_RETRY_FOR_S, MAX_RETRY_FOR_S, what),
        frozenset(events),
    )
