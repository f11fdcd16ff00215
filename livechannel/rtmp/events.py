"""What `ServerConnection.next_event()` yields. Frozen, slotted; no behaviour."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class ConnectRequested:
    """`connect` arrived; the core has already answered NetConnection.Connect.Success."""

    app: str
    tc_url: str
    flash_ver: str
    properties: dict[str, Any]


@dataclass(frozen=True, slots=True)
class PublishRequested:
    """`publish` arrived. The edge must call accept_publish() or reject_publish().

    `name` is the stream name exactly as sent, query string included (`chan?a=1&b=2`),
    possibly still percent-encoded (ffmpeg) or already decoded (librtmp).
    """

    stream_id: int
    app: str
    name: str
    publish_type: str  # "live" / "record" / "append"


@dataclass(frozen=True, slots=True)
class PlayRefused:
    """`play` arrived; the core answered NetStream.Play.Failed. The edge should close."""

    stream_id: int
    name: str


@dataclass(frozen=True, slots=True)
class MetaData:
    """`@setDataFrame`/`onMetaData` (an AMF0 ECMA array or object)."""

    values: dict[str, Any]


@dataclass(frozen=True, slots=True)
class AudioData:
    """An RTMP audio message: an FLV audio tag body. `timestamp_ms` is the 32-bit RTMP
    timestamp (absolute, mod 2**32); unwrapping is media/timestamps.py's job."""

    stream_id: int
    timestamp_ms: int
    payload: bytes


@dataclass(frozen=True, slots=True)
class VideoData:
    """An RTMP video message: an FLV video tag body."""

    stream_id: int
    timestamp_ms: int
    payload: bytes


@dataclass(frozen=True, slots=True)
class Unpublished:
    """FCUnpublish, deleteStream or closeStream for the publishing stream."""

    stream_id: int


Event = (
    ConnectRequested
    | PublishRequested
    | PlayRefused
    | MetaData
    | AudioData
    | VideoData
    | Unpublished
)
