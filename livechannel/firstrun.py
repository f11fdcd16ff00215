"""What `livechannel serve` tells a newcomer: where the API is, which key to use and where its
secret is, and (for the demo channel) a ready-to-paste ffmpeg command, the OBS split and a
play URL.

Two choices a user would otherwise have to guess:
- The host in the URLs. Listening on all addresses with no `domain` configured, the printed
  URLs carry this machine's own address (the one its default route leaves by), so they work
  from another machine; when they carry 127.0.0.1 the banner says they work here only.
- Signed URLs are credentials (a publish URL lets anyone push for as long as it is valid).
  They are printed only to a terminal, or with `--show-urls`: a service under systemd or a
  container runtime writes stdout into logs that outlive the URLs' secrecy. Otherwise the
  banner says how to mint them on demand (`livechannel url NAME`).
"""

from __future__ import annotations

import ipaddress
import shlex
import socket
import time
from dataclasses import replace

from livechannel import __version__
from livechannel.auth import urls
from livechannel.config import WILDCARD_HOSTS, Config
from livechannel.server import Running
from livechannel.store.base import Acl

BANNER_URL_LIFETIME_S = 7 * 24 * 3600  # the demo URLs printed at start stay valid for a week
# A TEST-NET-1 address (RFC 5737): "connecting" a UDP socket to it sends nothing, but makes
# the kernel pick the source address of the default route.
ROUTE_PROBE_ADDRESS = ("192.0.2.1", 9)


def own_address() -> str | None:
    """This machine's address on its default route, or None (no network, or loopback only)."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(ROUTE_PROBE_ADDRESS)
            address = str(s.getsockname()[0])
    except OSError:
        return None
    ip = ipaddress.ip_address(address)
    return None if ip.is_loopback or ip.is_unspecified else address


def with_reachable_domain(cfg: Config) -> Config:
    """Listening on all addresses with no domain configured: URLs carry this host's address."""
    if cfg.domain_configured or cfg.http_listen.host not in WILDCARD_HOSTS:
        return cfg
    address = own_address()
    return cfg if address is None else replace(cfg, domain=address)


def host_note(cfg: Config) -> str:
    ip = _ip(cfg.domain)
    if cfg.domain == "localhost" or (ip is not None and ip.is_loopback):
        return f"{cfg.domain} works from this machine only; --domain NAME sets the host others use"
    if not cfg.domain_configured:
        return f"{cfg.domain} is this machine's address; --domain NAME sets another"
    return ""


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return None


def banner(
    cfg: Config, running: Running, *, show_urls: bool, secret_at: str, admin_hint: str = ""
) -> str:
    """`secret_at`: where the access key's secret is; `admin_hint`: the options the admin
    commands need to find this service (e.g. ` --data-dir /srv/lc`)."""
    bucket = cfg.buckets[0].name
    acl = running.acls.get(bucket, cfg.buckets[0].acl)
    key_id, secret = next(iter(cfg.access_keys.items()))
    api = f"http://{running.urls.domain}:{running.http_port}"
    if ":" in running.urls.domain:
        api = f"http://[{running.urls.domain}]:{running.http_port}"
    lines = [
        f"livechannel {__version__} is running",
        f"  bucket      {bucket} (ACL {acl.value})",
        f"  API         {api}  (OSS dialect; oss2 works)",
        f"  console     {api}/-/console/  (sign in with the access key)",
        f"  access key  {key_id}  (secret in {secret_at})",
    ]
    if note := host_note(cfg):
        lines.append(f"  host        {note}")
    lines.append("")
    channel = cfg.demo_channel
    if not channel:
        lines += [
            "Create a channel and get its URLs:",
            f"  livechannel channel create NAME{admin_hint}",
            f"  livechannel url NAME{admin_hint}",
        ]
        return "\n".join(lines)
    expires = int(time.time()) + BANNER_URL_LIFETIME_S
    url = running.urls.publish_url(bucket, channel)
    if acl != Acl.PUBLIC_READ_WRITE:
        url = urls.signed_publish_url(running.urls, bucket, channel, key_id, secret, expires)
    tls_url = ""
    if running.urls.rtmps_port is not None:
        tls_url = running.urls.publish_url(bucket, channel, tls=True)
        if acl != Acl.PUBLIC_READ_WRITE:
            tls_url = urls.signed_publish_url(running.urls, bucket, channel, key_id, secret,
                                              expires, tls=True)  # fmt: skip
    play = running.urls.play_url(bucket, channel, "playlist.m3u8")
    if acl == Acl.PRIVATE:
        key = f"{channel}/playlist.m3u8"
        play += "?" + urls.signed_object_query(bucket, key, key_id, secret, expires, "hls/sign")
    if not show_urls and acl != Acl.PUBLIC_READ_WRITE:  # then the URLs carry signatures
        lines += [
            f"Channel '{channel}' is ready. Its signed URLs are credentials and stdout is not a",
            "terminal (logs would keep them): not printed here (--show-urls prints them). Mint:",
            f"  livechannel url {channel}{admin_hint}",
            "(--demo-channel '' or demo_channel = \"\" in the config file: no demo channel)",
        ]
        return "\n".join(lines)
    server_part, _, key_part = url.rpartition("/")
    lifetime = " (URL valid for 7 days)" if acl != Acl.PUBLIC_READ_WRITE else ""
    lines += [
        f"Push a test stream to channel '{channel}'{lifetime}:",
        "  ffmpeg -re -f lavfi -i testsrc2=size=1280x720:rate=30 -f lavfi -i sine=frequency=440 "
        f"-c:v libx264 -g 60 -c:a aac -f flv {shlex.quote(url)}",
        f"  (or: python samples/make_sample.py && ffmpeg -re -i samples/sample.flv -c copy "
        f"-f flv {shlex.quote(url)})",
        "OBS: Settings → Stream → Service 'Custom…'",
        f"  Server      {server_part}",
        f"  Stream Key  {key_part}",
        *([f"Over TLS (RTMPS): {shlex.quote(tls_url)}"] if tls_url else []),
        "Play (HLS)" + (", signed for 7 days:" if acl == Acl.PRIVATE else ":"),
        f"  ffplay {shlex.quote(play)}",
    ]
    return "\n".join(lines)
