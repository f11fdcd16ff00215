"""RTMP message types and the bodies of protocol control, user control and command messages
(RTMP spec 1.0 §5.4, §6.2, §7.1)."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, Final

from livechannel.rtmp import amf0
from livechannel.rtmp.errors import ProtocolError
from livechannel.rtmp.limits import MAX_AMF_DEPTH

_U16: Final = struct.Struct(">H")
_U32: Final = struct.Struct(">I")
_U16_U32: Final = struct.Struct(">HI")
_U32_U8: Final = struct.Struct(">IB")

PROTOCOL_CONTROL_CSID = 2  # §5.4: protocol control messages travel on chunk stream 2, msid 0


class MessageType(IntEnum):
    """Message type ids (§5.4, §7.1)."""

    SET_CHUNK_SIZE = 1
    ABORT = 2
    ACKNOWLEDGEMENT = 3
    USER_CONTROL = 4
    WINDOW_ACK_SIZE = 5
    SET_PEER_BANDWIDTH = 6
    AUDIO = 8
    VIDEO = 9
    DATA_AMF3 = 15
    SHARED_OBJECT_AMF3 = 16
    COMMAND_AMF3 = 17
    DATA_AMF0 = 18
    SHARED_OBJECT_AMF0 = 19
    COMMAND_AMF0 = 20
    AGGREGATE = 22


# The media type ids as plain ints, for the code that compares with them per message: in
# Python 3.11 a member read off its Enum class goes through EnumType.__getattr__ (~900
# instructions).
VIDEO_TYPE_ID = int(MessageType.VIDEO)
AUDIO_TYPE_ID = int(MessageType.AUDIO)


class UserControlEvent(IntEnum):
    """User control event types (§7.1.7)."""

    STREAM_BEGIN = 0
    STREAM_EOF = 1
    STREAM_DRY = 2
    SET_BUFFER_LENGTH = 3
    STREAM_IS_RECORDED = 4
    PING_REQUEST = 6
    PING_RESPONSE = 7


class PeerBandwidthLimit(IntEnum):
    """Limit type of Set Peer Bandwidth (§5.4.5)."""

    HARD = 0
    SOFT = 1
    DYNAMIC = 2


# ---------------------------------------------------------------- protocol control bodies


def u32_body(value: int) -> bytes:
    """Body of Set Chunk Size, Abort, Acknowledgement and Window Ack Size: one u32."""
    return _U32.pack(value & 0xFFFFFFFF)


def parse_u32_body(payload: bytes, what: str) -> int:
    if len(payload) < 4:
        raise ProtocolError(f"{what} message of {len(payload)} bytes (needs 4)")
    value: int = _U32.unpack_from(payload)[0]
    return value


def set_peer_bandwidth_body(window: int, limit: PeerBandwidthLimit) -> bytes:
    return _U32_U8.pack(window, limit)


def parse_set_peer_bandwidth(payload: bytes) -> tuple[int, int]:
    if len(payload) < 5:
        raise ProtocolError(f"Set Peer Bandwidth message of {len(payload)} bytes (needs 5)")
    window, limit = _U32_U8.unpack_from(payload)
    return window, limit


def user_control_body(event: UserControlEvent, value: int) -> bytes:
    """Stream Begin/EOF/Dry/IsRecorded carry a stream id, Ping a timestamp: one u32 each."""
    return _U16_U32.pack(event, value & 0xFFFFFFFF)


def parse_user_control(payload: bytes) -> tuple[int, bytes]:
    """(event type, event data)."""
    if len(payload) < 2:
        raise ProtocolError(f"User Control message of {len(payload)} bytes (needs 2)")
    event: int = _U16.unpack_from(payload)[0]
    return event, payload[2:]


# ---------------------------------------------------------------------- command messages


@dataclass(frozen=True, slots=True)
class Command:
    """An AMF0 command (§7.1.1): name, transaction id, command object, further arguments."""

    name: str
    transaction_id: float
    command_object: Any
    args: tuple[Any, ...]


def amf_body(type_id: int, payload: bytes) -> bytes:
    """The AMF0 part of a command or data message. The AMF3 variants (17, 15) start with a
    format byte 0 and continue in AMF0 (§7.1.1); some senders skip that byte."""
    if type_id in (MessageType.COMMAND_AMF3, MessageType.DATA_AMF3) and payload[:1] == b"\x00":
        return payload[1:]
    return payload


def parse_command(payload: bytes, *, max_depth: int = MAX_AMF_DEPTH) -> Command:
    values = amf0.decode_values(payload, max_depth=max_depth)
    if len(values) < 2 or not isinstance(values[0], str) or not isinstance(values[1], float):
        raise ProtocolError("command message does not start with a name and a transaction id")
    command_object = values[2] if len(values) > 2 else None
    return Command(values[0], values[1], command_object, tuple(values[3:]))


def command_body(name: str, transaction_id: float, command_object: Any, *args: Any) -> bytes:
    return amf0.encode_values(name, transaction_id, command_object, *args)
