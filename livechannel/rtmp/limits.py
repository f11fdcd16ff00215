"""Every bound the RTMP core enforces, in one frozen dataclass the edge may override."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

# A 1080p high-bitrate keyframe is ~1-2 MB; 8 MiB leaves room for 4K IDRs yet bounds memory.
MAX_MESSAGE_BYTES = 8 * 1024 * 1024
# The message length field is 24 bits, so a chunk larger than 0xFFFFFF can never be filled;
# a bigger Set Chunk Size is garbage, not a real client (they send 128..65536).
MAX_PEER_CHUNK_SIZE = 0xFFFFFF
# Real publishers use 2..8 chunk streams; each one may hold a partial message.
MAX_CHUNK_STREAMS = 64
# Sum of all partially received messages: a few interleaved maximum-size messages at once.
# The reader copies their pieces (it keeps no input buffer), so this is what they hold.
MAX_PARTIAL_BYTES = 2 * MAX_MESSAGE_BYTES
# onMetaData is one level deep in practice; 32 stops stack exhaustion from nested garbage.
MAX_AMF_DEPTH = 32
# Media held between PublishRequested and accept/reject (the nginx-rtmp relay does not wait
# for Publish.Start): a few seconds of a high-bitrate stream while the policy check runs.
MAX_HELD_MEDIA_BYTES = 16 * 1024 * 1024
# Events the edge has not taken with next_event(); feeding more means the edge forgot to drain.
MAX_QUEUED_EVENTS = 10_000


@dataclass(frozen=True, slots=True)
class RtmpLimits:
    """Limits of one connection. Exceeding a peer-controlled one raises ProtocolError
    (MessageTooLarge); exceeding `max_queued_events` raises LocalProtocolError."""

    max_message_bytes: int = MAX_MESSAGE_BYTES
    max_peer_chunk_size: int = MAX_PEER_CHUNK_SIZE
    max_chunk_streams: int = MAX_CHUNK_STREAMS
    max_partial_bytes: int = MAX_PARTIAL_BYTES
    max_amf_depth: int = MAX_AMF_DEPTH
    max_held_media_bytes: int = MAX_HELD_MEDIA_BYTES
    max_queued_events: int = MAX_QUEUED_EVENTS


DEFAULT_LIMITS: Final = RtmpLimits()  # frozen, so one shared default instance is safe
