"""PutLiveChannel's body and channel names, validated (OSS API reference, PutLiveChannel). Sans-IO.

Everything is checked before anything is stored, so a refused request changes nothing.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from livechannel.api import xml
from livechannel.api.addressing import check_object_name
from livechannel.errors import InvalidArgument, InvalidObjectName, MalformedXML
from livechannel.storage.keys import check_file_name
from livechannel.store.base import ChannelConfig, ChannelStatus, SegmentFormat, Snapshot

MAX_DESCRIPTION_BYTES = 128  # OSS API reference, PutLiveChannel Description: "最长128字节"
# OSS API reference, PutLiveChannel: the bounds below, field by field.
FRAG_RANGE = range(1, 101)  # FragDuration and FragCount in [1, 100]
SNAPSHOT_INTERVAL_RANGE = range(1, 101)  # Snapshot Interval: [1, 100] seconds
PLAYLIST_NAME_LENGTH = range(6, 129)  # PlaylistName: length in [6, 128]
DEFAULT_PLAYLIST_NAME = "playlist.m3u8"  # also what an empty <PlaylistName/> means
TARGET_TYPES = frozenset({"HLS"})  # OSS API reference, PutLiveChannel: Type's only valid value
MAX_NUMBER_DIGITS = 9  # longer is out of range anyway; int() raises ValueError past 4300 digits


def _argument(message: str, name: str, value: str) -> InvalidArgument:
    return InvalidArgument(message, ArgumentName=name, ArgumentValue=value)


def check_channel_name(name: str) -> None:
    """OSS API reference, PutLiveChannel: object-name rules, and no `/`. We also refuse control
    characters and the names `.` and `..`, which would make `<channel>/...` keys leave the
    channel's prefix, and a backslash, which a publish URL cannot carry (publish.resolve) nor a
    local path hold."""
    check_object_name(name)
    if "/" in name or "\\" in name:
        raise InvalidObjectName("a channel name must not contain / or \\")
    if name in (".", "..") or any(ord(c) < 0x20 or ord(c) == 0x7F for c in name):
        raise InvalidObjectName("a channel name must not be . or .. or contain control characters")


def check_playlist_name(name: str, argument: str = "PlaylistName") -> None:
    """OSS API reference, PutLiveChannel PlaylistName (ends in .m3u8, 6-128 characters), and
    the storage's rule for the file name it becomes (livechannel.storage.keys.check_file_name:
    at most 255 bytes, not a temp file's name), so that a name accepted here is never refused
    by the storage after a publisher's first segment. PutLiveChannel, PostVodPlaylist and the
    RTMP URL's playlistName all come through here."""
    if (
        not name.endswith(".m3u8")
        or len(name) not in PLAYLIST_NAME_LENGTH
        or "/" in name
        or "\\" in name
        or any(ord(c) < 0x20 or ord(c) == 0x7F for c in name)
    ):
        raise _argument(
            "the playlist name must end with .m3u8, be 6-128 characters and contain no /",
            argument,
            name,
        )
    try:
        check_file_name(name, name)
    except InvalidObjectName as e:
        raise _argument(
            f"the playlist name cannot be stored: {e.message}", argument, name
        ) from None


def _int_in(text: str, allowed: range, name: str) -> int:
    digits = text.isascii() and text.isdigit() and len(text) <= MAX_NUMBER_DIGITS
    if not digits or int(text) not in allowed:
        raise _argument(f"{name} must be an integer in [{allowed[0]}, {allowed[-1]}]", name, text)
    return int(text)


def parse_status(text: str, argument: str = "status") -> ChannelStatus:
    """`enabled` or `disabled` (PutLiveChannelStatus's `status`, the XML's `<Status>`, the
    console's form), else InvalidArgument naming `argument`."""
    try:
        return ChannelStatus(text)
    except ValueError:
        raise _argument(f"{argument} must be enabled or disabled", argument, text) from None


def _status(text: str | None) -> ChannelStatus:
    return parse_status(text, "Status") if text else ChannelStatus.ENABLED


def _snapshot(root: ET.Element) -> Snapshot | None:
    node = root.find("Snapshot")
    if node is None:
        return None
    interval = xml.child_text(node, "Interval")
    if not interval:
        raise _argument("Snapshot needs an Interval", "Interval", "")
    return Snapshot(
        role_name=xml.child_text(node, "RoleName") or "",
        dest_bucket=xml.child_text(node, "DestBucket") or "",
        notify_topic=xml.child_text(node, "NotifyTopic") or "",
        interval_s=_int_in(interval, SNAPSHOT_INTERVAL_RANGE, "Interval"),
    )


def _segment_format(text: str | None) -> SegmentFormat | None:
    """Our extension `<Target><SegmentFormat>ts|fmp4</SegmentFormat>` (docs/api.md); absent
    or empty: the bucket's default."""
    if not text:
        return None
    try:
        return SegmentFormat(text)
    except ValueError:
        raise _argument("SegmentFormat must be ts or fmp4", "SegmentFormat", text) from None


def parse_channel_config(body: bytes) -> ChannelConfig:
    """`<LiveChannelConfiguration>` -> ChannelConfig, or MalformedXML / InvalidArgument."""
    root = xml.parse(body)
    if root.tag != "LiveChannelConfiguration":
        raise MalformedXML("the root element must be LiveChannelConfiguration")
    # Description keeps its spaces; everything else is a token and is stripped.
    description_node = root.find("Description")
    description = (description_node.text or "") if description_node is not None else ""
    if len(description.encode()) > MAX_DESCRIPTION_BYTES:
        raise _argument("Description is longer than 128 bytes", "Description", description)
    status = _status(xml.child_text(root, "Status"))

    target = root.find("Target")
    if target is None:
        raise _argument("Target is required", "Target", "")
    target_type = xml.child_text(target, "Type")
    if target_type not in TARGET_TYPES:
        raise _argument("Target Type must be HLS", "Type", target_type or "")
    frag_duration = xml.child_text(target, "FragDuration")
    frag_count = xml.child_text(target, "FragCount")
    if bool(frag_duration) != bool(frag_count):
        # OSS API reference, PutLiveChannel: the defaults apply only when neither is given.
        raise _argument(
            "FragDuration and FragCount must be given together",
            "FragDuration" if not frag_duration else "FragCount",
            "",
        )
    defaults = ChannelConfig()
    duration_s = (
        _int_in(frag_duration, FRAG_RANGE, "FragDuration")
        if frag_duration
        else defaults.frag_duration_s
    )
    count = _int_in(frag_count, FRAG_RANGE, "FragCount") if frag_count else defaults.frag_count
    playlist_name = xml.child_text(target, "PlaylistName") or DEFAULT_PLAYLIST_NAME
    check_playlist_name(playlist_name)
    segment_format = _segment_format(xml.child_text(target, "SegmentFormat"))
    return ChannelConfig(
        description=description,
        status=status,
        frag_duration_s=duration_s,
        frag_count=count,
        playlist_name=playlist_name,
        snapshot=_snapshot(root),
        segment_format=segment_format,
    )
