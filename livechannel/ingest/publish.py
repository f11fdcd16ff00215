"""Where a publish goes: the RTMP app + stream name → bucket, channel and URL parameters.

Sans-IO. The URL forms (docs/api.md, "Addressing"):
  virtual host  rtmp://<bucket>.<domain>/live/<channel>?<params>     bucket from tcUrl's host
  path style    rtmp://127.0.0.1:<port>/<bucket>/live/<channel>?..   bucket from the path
  plain         rtmp://<host>/live/<channel>?<params>                the default bucket
An RTMP client splits the URL's path into the connect's app and the publish's stream name
where it likes: ffmpeg and OBS send app `<bucket>/live` and name `<channel>?..`, nginx-rtmp's
push relay splits at the first `/` (app `<bucket>`, name `live/<channel>?..`). So the publish
is resolved from the whole path, app + "/" + stream name, however it was split. The app is
the tcUrl's path (RTMP specification, "connect": tcUrl is `protocol://server:port/app`); a
client that sends no app has it taken from tcUrl.
The query travels inside the stream name. ffmpeg leaves it percent-encoded, librtmp (OBS,
GStreamer rtmpsink) decodes it first. We decode it exactly once, as the HTTP API does
(application/x-www-form-urlencoded: `+` is a space, livechannel.api.addressing), except the
Signature: base64 has `+` and never a space, and after librtmp's decoding its `+` arrives raw.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from urllib.parse import unquote, unquote_plus, urlsplit

RTMP_APP = "live"  # OSS API reference, LiveChannel: the application name is always "live"
MAX_STREAM_NAME_BYTES = 4096  # a signed name is ~150 bytes; anything huge is junk
MAX_PARAMS = 32  # the spec knows five parameters; a long list is an attack, not a client


class PublishUrlError(Exception):
    """The publish URL does not name a bucket/channel we can serve; message is user-readable."""


@dataclass(frozen=True, slots=True)
class PublishTarget:
    bucket: str
    channel: str
    params: dict[str, str]  # decoded once, each key at most once

    @property
    def playlist_name(self) -> str | None:
        return self.params.get("playlistName") or None


def _bucket_from_tc_url(tc_url: str, domain: str) -> str | None:
    """`rtmp://<bucket>.<domain>[:port]/live` → bucket; None when the host is not under domain."""
    try:
        host = urlsplit(tc_url).hostname or ""
    except ValueError:
        return None
    suffix = "." + domain.lower()
    if domain and host.endswith(suffix) and len(host) > len(suffix):
        return host[: -len(suffix)]
    return None


def parse_params(query: str) -> dict[str, str]:
    params: dict[str, str] = {}
    if not query:
        return params
    parts = query.split("&")
    if len(parts) > MAX_PARAMS:
        raise PublishUrlError(f"too many URL parameters (at most {MAX_PARAMS})")
    for part in parts:
        if not part:
            continue
        key, _, value = part.partition("=")
        key = unquote_plus(key)
        value = unquote(value) if key == "Signature" else unquote_plus(value)
        if key in params:
            raise PublishUrlError(f"URL parameter {key!r} given more than once")
        params[key] = value
    return params


def _app_path(app: str, tc_url: str) -> str:
    # Some clients repeat the query in app ("live?x=1"); the app part is only the path.
    path = app.partition("?")[0].strip("/")
    if not path:
        with contextlib.suppress(ValueError):
            path = urlsplit(tc_url).path.strip("/")
    return path


def resolve(
    app: str, stream_name: str, tc_url: str, *, domain: str, default_bucket: str
) -> PublishTarget:
    if len(stream_name.encode("utf-8", "surrogatepass")) > MAX_STREAM_NAME_BYTES:
        raise PublishUrlError("stream name too long")
    name, _, query = stream_name.partition("?")
    # Split on the raw path: a `%2F` inside the channel name is not a separator.
    path = [p for p in _app_path(app, tc_url).split("/") if p] + name.lstrip("/").split("/")
    if len(path) == 2 and path[0] == RTMP_APP:
        bucket = _bucket_from_tc_url(tc_url, domain) or default_bucket
    elif len(path) == 3 and path[1] == RTMP_APP and path[0]:
        bucket = path[0]
    else:
        raise PublishUrlError(
            f"unknown application {'/'.join(path[:-1])!r}: publish to "
            f"rtmp://<host>/live/<channel> or rtmp://<host>/<bucket>/live/<channel>"
        )
    channel = unquote(path[-1])
    if not channel:
        raise PublishUrlError("no channel name in the publish URL")
    if "/" in channel or "\\" in channel or "\x00" in channel:
        raise PublishUrlError("invalid channel name")
    try:
        channel.encode("utf-8")  # librtmp may hand us raw bytes (surrogate-escaped)
    except UnicodeEncodeError:
        raise PublishUrlError("channel name is not valid UTF-8") from None
    return PublishTarget(bucket=bucket, channel=channel, params=parse_params(query))
