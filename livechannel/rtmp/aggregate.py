"""Aggregate messages (RTMP spec 1.0 §6.1.4 / §7.1.6): several FLV tags in one message.

Each sub-message is an FLV tag: type (1), size (3), timestamp (3 + 1 extension byte),
stream id (3), body, then a 4-byte back pointer. The first tag's timestamp maps to the
aggregate's own; the others keep their offsets from it (mod 2**32).
"""

from __future__ import annotations

from typing import NamedTuple

from livechannel.rtmp.chunk import TIMESTAMP_MASK
from livechannel.rtmp.errors import ProtocolError

_TAG_HEADER_SIZE = 11  # FLV tag header: type, size, timestamp + extension, stream id
_BACK_POINTER_SIZE = 4  # FLV "previous tag size" after each tag


class SubMessage(NamedTuple):
    type_id: int
    timestamp_ms: int
    payload: bytes


def split_aggregate(payload: bytes, timestamp_ms: int) -> list[SubMessage]:
    """The sub-messages in order. Raises ProtocolError on a truncated tag."""
    result: list[SubMessage] = []
    pos = 0
    end = len(payload)
    first_ts: int | None = None
    while end - pos >= _TAG_HEADER_SIZE:
        type_id = payload[pos]
        size = int.from_bytes(payload[pos + 1 : pos + 4], "big")
        tag_ts = int.from_bytes(payload[pos + 4 : pos + 7], "big") | (payload[pos + 7] << 24)
        body_start = pos + _TAG_HEADER_SIZE
        body_end = body_start + size
        if body_end > end:
            raise ProtocolError(f"aggregate sub-message of {size} bytes overruns the message")
        if first_ts is None:
            first_ts = tag_ts
        sub_ts = (timestamp_ms + tag_ts - first_ts) & TIMESTAMP_MASK
        result.append(SubMessage(type_id, sub_ts, payload[body_start:body_end]))
        pos = body_end + _BACK_POINTER_SIZE
    if pos < end:  # (pos > end only when the final back pointer is missing: harmless)
        raise ProtocolError("trailing bytes after the last aggregate sub-message")
    return result
