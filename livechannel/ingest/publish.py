"""Where a publish goes: the RTMP app + stream name → bucket, channel and URL parameters.

Sans-IO. The URL forms (spec "Addressing"):
  virtual host  rtmp://<bucket>.<domain>/live/<channel>?<params>     app "live", bucket from tcUrl
  path style    rtmp://127.0.0.1:<port>/<bucket>/live/<channel>?..   app "<bucket>/live"
  plain         rtmp://<host>/live/<channel>?<params>                app "live", the default bucket
The query travels inside the stream name. ffmpeg leaves it percent-encoded, librtmp (OBS,
GStreamer rtmpsink) decodes it first. We decode it exactly once, as the HTTP API does
(application/x-www-form-urlencoded: `+` is a space, livechannel.api.addressing), except the
Signature: base64 has `+` and never a space, and after librtmp's decoding its `+` arrives raw.
"""

from __future__ import annotations

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


def resolve(
    app: str, stream_name: str, tc_url: str, *, domain: str, default_bucket: str
) -> PublishTarget:
    if len(stream_name.encode("utf-8", "surrogatepass")) > MAX_STREAM_NAME_BYTES:
        raise PublishUrlError("stream name too long")
    app = app.strip("/")
    # Some clients repeat the query in app ("live?x=1"); the app part is only the path.
    app = app.partition("?")[0]
    if app == RTMP_APP:
        bucket = _bucket_from_tc_url(tc_url, domain) or default_bucket
    elif app.endswith("/" + RTMP_APP) and app.count("/") == 1:
        bucket = app.split("/", 1)[0]
    else:
        raise PublishUrlError(
            f"unknown application {app!r}: publish to rtmp://<host>/live/<channel> "
            f"or rtmp://<host>/<bucket>/live/<channel>"
        )
    name, _, query = stream_name.partition("?")
    channel = unquote(name)
    if not channel:
        raise PublishUrlError("no channel name in the publish URL")
    if "/" in channel or "\\" in channel or "\x00" in channel:
        raise PublishUrlError("invalid channel name")
    try:
        channel.encode("utf-8")  # librtmp may hand us raw bytes (surrogate-escaped)
    except UnicodeEncodeError:
        raise PublishUrlError("channel name is not valid UTF-8") from None
    return PublishTarget(bucket=bucket, channel=channel, params=parse_params(query))
