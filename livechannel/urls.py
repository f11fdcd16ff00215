"""The URLs users see: PublishUrls/PlayUrls in API answers and the start-up banner.

Virtual-host style (`<bucket>.<domain>`) for a real domain name; path style
(`<host>:<port>/<bucket>/...`) for an IP address or `localhost`, the same split `oss2` makes.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
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

    def play_url(self, bucket: str, channel: str, playlist_name: str) -> str:
        authority, prefix = self._host(bucket, self.http_port, 80)
        return f"http://{authority}{prefix}/{quote(channel, safe='')}/{quote(playlist_name)}"
