"""The URLs users see: PublishUrls/PlayUrls in API answers and the start-up banner.

Virtual-host style (`<bucket>.<domain>`) for a real domain name; path style
(`<host>:<port>/<bucket>/...`) for an IP address or `localhost`, the same split `oss2` makes.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import quote


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

    def _host(self, bucket: str, port: int, default_port: int) -> tuple[str, str]:
        """(authority, path prefix) for a bucket."""
        suffix = "" if port == default_port else f":{port}"
        if is_ip_or_localhost(self.domain):
            host = f"[{self.domain}]" if ":" in self.domain else self.domain
            return f"{host}{suffix}", f"/{bucket}"
        return f"{bucket}.{self.domain}{suffix}", ""

    def publish_url(self, bucket: str, channel: str) -> str:
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
