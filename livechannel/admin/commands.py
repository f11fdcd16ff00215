"""`livechannel channel create|list|show|disable|enable|delete NAME` and `livechannel url NAME`:
the operator's tools beside `serve`, for when no SDK is at hand.

They find the running service and its key the way `serve` does (the same --config, --data-dir
and LIVECHANNEL_* variables; the key pair from the configuration or `<data_dir>/credentials.
json`) and talk to its HTTP API (livechannel.admin.client), so they work with any number of
workers and need no access to the store.

`url` mints a signed publish URL (with the OBS Server / Stream Key split) and a signed play
URL. Validity: --expires, default DEFAULT_EXPIRES, at most MAX_EXPIRES. The signature is
checked when a publisher connects, not while it streams, so an OBS setup works until the URL
expires — a week (the banner's demo URL) would break it weekly. A signed URL cannot be revoked
on its own (only by disabling the channel or retiring the key), so it is not made endless.
"""

from __future__ import annotations

import argparse
import re
import shlex
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable

from livechannel.admin.client import ApiError, Client
from livechannel.auth import urls
from livechannel.config import WILDCARD_HOSTS, Config

DEFAULT_EXPIRES = "30d"
MAX_EXPIRES_S = 365 * 24 * 3600  # a year: re-minted yearly at worst; see the module docstring
MAX_EXPIRES = "365d"
_UNITS_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"(\d+)([smhd]?)")


def parse_expires(text: str) -> int:
    """`30d`, `12h`, `90m`, `3600s` or `3600` -> seconds, within 1 s .. MAX_EXPIRES_S."""
    match = _DURATION.fullmatch(text.strip())
    if not match:
        raise argparse.ArgumentTypeError(f"expected a duration like 30d, 12h, 90m: {text!r}")
    seconds = int(match.group(1)) * _UNITS_S[match.group(2) or "s"]
    if not 0 < seconds <= MAX_EXPIRES_S:
        raise argparse.ArgumentTypeError(f"must be more than 0 and at most {MAX_EXPIRES}")
    return seconds


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--config", help="the TOML config file the service runs with")
        p.add_argument("--data-dir", help="the service's data directory (default ./data)")
        p.add_argument("--endpoint", help="the API, http://HOST:PORT (default: from the config)")
        p.add_argument("--bucket", help="bucket (default: the configured default bucket)")

    ch = sub.add_parser("channel", help="manage live channels through the running service")
    actions = ch.add_subparsers(dest="action", required=True)
    create = actions.add_parser("create", help="create (or reconfigure) a channel")
    create.add_argument("name")
    create.add_argument("--description", default="")
    create.add_argument("--frag-duration", type=int, default=5, help="seconds (default 5)")
    create.add_argument("--frag-count", type=int, default=3, help="live window (default 3)")
    create.add_argument("--playlist-name", default="playlist.m3u8")
    common(create)
    lister = actions.add_parser("list", help="list channels, with whether each is live")
    lister.add_argument("--prefix", default="")
    common(lister)
    for action, what in (
        ("show", "a channel's configuration and live status"),
        ("disable", "refuse publishing (kicks a running publisher)"),
        ("enable", "allow publishing again"),
        ("delete", "delete a channel (its objects stay)"),
    ):
        common(p := actions.add_parser(action, help=what))
        p.add_argument("name")
    url = sub.add_parser("url", help="mint a signed publish URL (OBS split) and play URL")
    url.add_argument("name")
    url.add_argument(
        "--expires",
        type=parse_expires,
        default=DEFAULT_EXPIRES,
        help=f"validity, e.g. 12h, 30d (default {DEFAULT_EXPIRES}, at most {MAX_EXPIRES})",
    )
    common(url)


def client_for(cfg: Config, args: argparse.Namespace) -> Client:
    endpoint = args.endpoint
    if not endpoint:
        listen = cfg.http_listen
        host = "127.0.0.1" if listen.host in WILDCARD_HOSTS else listen.host
        endpoint = f"http://{f'[{host}]' if ':' in host else host}:{listen.port}"
    key_id, secret = next(iter(cfg.access_keys.items()))
    return Client(endpoint.rstrip("/"), args.bucket or cfg.default_bucket, key_id, secret)


def run(cfg: Config, args: argparse.Namespace) -> int:
    client = client_for(cfg, args)
    command: Callable[[Client, argparse.Namespace], None]
    command = mint_urls if args.command == "url" else _ACTIONS[args.action]
    try:
        command(client, args)
    except ApiError as e:
        print(f"livechannel: {e}", file=sys.stderr)
        return 1
    return 0


# --- channel actions ------------------------------------------------------------------------


def _el(tag: str, text: str | int | None = None, *children: ET.Element) -> ET.Element:
    e = ET.Element(tag)
    if text is not None:
        e.text = str(text)
    e.extend(children)
    return e


def create(client: Client, args: argparse.Namespace) -> None:
    config = _el(
        "LiveChannelConfiguration",
        None,
        _el("Description", args.description),
        _el("Status", "enabled"),
        _el(
            "Target",
            None,
            _el("Type", "HLS"),
            _el("FragDuration", args.frag_duration),
            _el("FragCount", args.frag_count),
            _el("PlaylistName", args.playlist_name),
        ),
    )
    body = ET.tostring(config, encoding="utf-8", xml_declaration=True)
    client.call("PUT", args.name, [("live", None)], body, "application/xml")
    print(f"created {client.bucket}/{args.name}; URLs: livechannel url {shlex.quote(args.name)}")


def list_channels(client: Client, args: argparse.Namespace) -> None:
    marker = ""
    while True:
        query = [("live", None), ("max-keys", "1000"), ("prefix", args.prefix)]
        root = client.call("GET", "", [*query, ("marker", marker)] if marker else query)
        assert root is not None
        for ch in root.iter("LiveChannel"):
            name = ch.findtext("Name") or ""
            live = _live_status(client, name)
            print(f"{name}\t{ch.findtext('Status')}\t{live}\t{ch.findtext('Description') or ''}")
        if root.findtext("IsTruncated") != "true":
            return
        marker = root.findtext("NextMarker") or ""


def _live_status(client: Client, name: str) -> str:
    stat = client.call("GET", name, [("live", None), ("comp", "stat")])
    return "Idle" if stat is None else stat.findtext("Status") or "Idle"


def show(client: Client, args: argparse.Namespace) -> None:
    info = client.call("GET", args.name, [("live", None)])
    stat = client.call("GET", args.name, [("live", None), ("comp", "stat")])
    assert info is not None and stat is not None
    print(f"channel      {client.bucket}/{args.name}")
    print(f"status       {info.findtext('Status')}")
    print(f"description  {info.findtext('Description') or ''}")
    target = info.find("Target")
    if target is not None:
        frag_s, count = target.findtext("FragDuration"), target.findtext("FragCount")
        print(
            f"target       {target.findtext('Type')}, FragDuration {frag_s} s, "
            f"FragCount {count}, {target.findtext('PlaylistName')}"
        )
    print(f"live         {stat.findtext('Status')}")
    if stat.findtext("Status") == "Live":
        print(f"  since      {stat.findtext('ConnectedTime')} from {stat.findtext('RemoteAddr')}")
        video, audio = stat.find("Video"), stat.find("Audio")
        if video is not None:
            print(
                f"  video      {video.findtext('Codec')} {video.findtext('Width')}x"
                f"{video.findtext('Height')} @ {video.findtext('FrameRate')} fps, "
                f"{video.findtext('Bandwidth')} B/s"
            )
        if audio is not None:
            print(
                f"  audio      {audio.findtext('Codec')} {audio.findtext('SampleRate')} Hz, "
                f"{audio.findtext('Bandwidth')} B/s"
            )


def _set_status(status: str) -> Callable[[Client, argparse.Namespace], None]:
    def action(client: Client, args: argparse.Namespace) -> None:
        client.call("PUT", args.name, [("live", None), ("status", status)])
        print(f"{client.bucket}/{args.name} {status}")

    return action


def delete(client: Client, args: argparse.Namespace) -> None:
    client.call("DELETE", args.name, [("live", None)])
    print(f"deleted {client.bucket}/{args.name}")


_ACTIONS: dict[str, Callable[[Client, argparse.Namespace], None]] = {
    "create": create,
    "list": list_channels,
    "show": show,
    "disable": _set_status("disabled"),
    "enable": _set_status("enabled"),
    "delete": delete,
}


# --- url ------------------------------------------------------------------------------------


def _channel_urls(client: Client, name: str) -> tuple[str, str, str]:
    """(PublishUrl, PlayUrl, playlist name) as the service renders them (its domain, its
    ports, a CDN base URL if the bucket has one)."""
    info = client.call("GET", name, [("live", None)])  # NoSuchLiveChannel if absent
    assert info is not None
    playlist = info.findtext("Target/PlaylistName") or "playlist.m3u8"
    root = client.call("GET", "", [("live", None), ("prefix", name), ("max-keys", "1000")])
    assert root is not None
    for ch in root.iter("LiveChannel"):
        if ch.findtext("Name") == name:
            publish = ch.findtext("PublishUrls/Url") or ""
            play = ch.findtext("PlayUrls/Url") or ""
            return publish, play, playlist
    raise ApiError(f"channel {name} is not listed")


def _bucket_acl(client: Client) -> str:
    root = client.call("GET", "", [("acl", None)])
    assert root is not None
    return root.findtext("AccessControlList/Grant") or "private"


def mint_urls(client: Client, args: argparse.Namespace) -> None:
    publish, play, playlist = _channel_urls(client, args.name)
    acl = _bucket_acl(client)
    expires = int(time.time()) + args.expires
    b, k, s = client.bucket, client.key_id, client.secret
    if acl != "public-read-write":
        publish = urls.sign_publish_url(publish, b, args.name, k, s, expires)
    if acl == "private":
        play += "?" + urls.signed_object_query(
            b, f"{args.name}/{playlist}", k, s, expires, "hls/sign"
        )
    server, _, stream_key = publish.rpartition("/")
    until = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(expires))
    print(f"publish     {publish}")
    print(f"  OBS Server      {server}")
    print(f"  OBS Stream Key  {stream_key}")
    print(f"play        {play}")
    print(f"valid until {until}" if acl != "public-read-write" else "unsigned (public-read-write)")
