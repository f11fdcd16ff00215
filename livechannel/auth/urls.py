"""The URLs users see: PublishUrls/PlayUrls in API answers and the start-up banner.

Virtual-host style (`<bucket>.<domain>`) for a real domain name; path style
(`<host>:<port>/<bucket>/...`) for an IP address or `localhost`, the same split `oss2` makes.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import quote, urlencode

from livechannel.auth import signing


def is_ip_or_localhost(host: str) -> bool:
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


@dataclass(frozen=True, slots=True)
class ServiceUrls:
    domain: str  # host name users reach the service by, e.g. "localhost" or "live.example.com"
    rtmp_port: int
    http_port: int
    # bucket -> where players fetch its objects instead of from us (a CDN, the store's own
    # public URL): "https://cdn.example.com/live", no trailing "/" (storage/factory.py).
    public_base_urls: Mapping[str, str] = field(default_factory=dict)
    rtmps_port: int | None = None  # the RTMPS listener's, if there is one

    def _host(self, bucket: str, port: int, default_port: int) -> tuple[str, str]:
        """(authority, path prefix) for a bucket."""
        suffix = "" if port == default_port else f":{port}"
        if is_ip_or_localhost(self.domain):
            host = f"[{self.domain}]" if ":" in self.domain else self.domain
            return f"{host}{suffix}", f"/{bucket}"
        return f"{bucket}.{self.domain}{suffix}", ""

    def publish_url(self, bucket: str, channel: str, *, tls: bool = False) -> str:
        """The RTMP publish URL, or with `tls` the RTMPS one (rtmps://, default port 443);
        both carry the same signature (it signs the bucket and channel, not the scheme)."""
        if tls and self.rtmps_port is None:
            raise ValueError("no RTMPS listener is configured")
        if tls:
            authority, prefix = self._host(bucket, self.rtmps_port or 443, 443)
            return f"rtmps://{authority}{prefix}/live/{quote(channel, safe='')}"
        authority, prefix = self._host(bucket, self.rtmp_port, 1935)
        return f"rtmp://{authority}{prefix}/live/{quote(channel, safe='')}"

    def public_url(self, bucket: str, key: str) -> str | None:
        """The object's URL under the bucket's public base URL, if it has one."""
        base = self.public_base_urls.get(bucket)
        return f"{base}/{quote(key, safe='/')}" if base else None

    def play_url(self, bucket: str, channel: str, playlist_name: str) -> str:
        public = self.public_url(bucket, f"{channel}/{playlist_name}")
        if public is not None:
            return public
        authority, prefix = self._host(bucket, self.http_port, 80)
        return f"http://{authority}{prefix}/{quote(channel, safe='')}/{quote(playlist_name)}"


def signed_publish_url(
    urls: ServiceUrls,
    bucket: str,
    channel: str,
    key_id: str,
    secret: str,
    expires_s: int,
    *,
    tls: bool = False,
) -> str:
    """A publish URL signed as `oss2.Bucket.sign_rtmp_url` signs it (OSS API reference,
    LiveChannel, "Signing RTMP publish URLs"), without a playlistName parameter; with `tls`
    the rtmps:// one."""
    url = urls.publish_url(bucket, channel, tls=tls)
    return sign_publish_url(url, bucket, channel, key_id, secret, expires_s)


def sign_publish_url(
    base: str, bucket: str, channel: str, key_id: str, secret: str, expires_s: int
) -> str:
    """`base`, a channel's unsigned PublishUrl (as the API lists it), signed likewise."""
    string_to_sign = signing.rtmp_string_to_sign(str(expires_s), {}, bucket, channel)
    signature = quote(signing.hmac_sha1_b64(secret, string_to_sign), safe="")
    return (
        f"{base}?OSSAccessKeyId={quote(key_id, safe='')}&Expires={expires_s}&Signature={signature}"
    )


def signed_object_query(
    bucket: str,
    key: str,
    key_id: str,
    secret: str,
    expires_s: int,
    process: str = "",
) -> str:
    """The query of a signed GET URL of an object, as `oss2.Bucket.sign_url` makes it;
    `process` (e.g. "hls/sign") is an `x-oss-process` parameter, signed too."""
    extra = [("x-oss-process", process)] if process else []
    params = signing.sign_url_params(key_id, secret, "GET", bucket, key, expires_s, extra)
    return urlencode(extra + params, quote_via=quote)
