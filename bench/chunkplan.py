"""An FLV file parsed once and pre-encoded as an RTMP chunk stream, for the load generator.

The input is looped to any length: loop k shifts every timestamp by k periods (the sequence
headers and onMetaData go out once, at the start, as encoders send them). Each loop is encoded
by one ChunkWriter that carries its header-compression state across loops, so the bytes are
exactly what a single long publish would put on the wire. Paced runs encode the whole run once
and every publisher sends slices of the same bytes object (no per-publisher copies).
"""

from __future__ import annotations

import bisect
import itertools
import tempfile
from array import array
from dataclasses import dataclass
from pathlib import Path

from livechannel.media.flv import TAG_TYPE_AUDIO, TAG_TYPE_SCRIPT, TAG_TYPE_VIDEO, iter_flv_tags
from livechannel.rtmp import amf0
from livechannel.rtmp.chunk import ChunkWriter
from livechannel.rtmp.messages import MessageType

# The benchmarks' input (run_bench.py's input_path makes it when it is missing).
DEFAULT_INPUT = Path(tempfile.gettempdir()) / "livechannel-bench" / "input.flv"
AUDIO_CSID = 4  # libavformat's choice for audio and data (and ClientConnection's)
VIDEO_CSID = 6  # libavformat's choice for video
DEFAULT_STREAM_ID = 1  # what createStream returns first, on ours and on nginx-rtmp
AVC_KEYFRAME_NALU = 0x17  # FLV VIDEODATA byte 0 (frame type 1, AVC) ...
AVC_PACKET_NALU = 0x01  # ... and AVCPacketType 1: coded frames (not a sequence header)
SEQUENCE_HEADER = 0x00  # AVCPacketType / AACPacketType 0


@dataclass(frozen=True, slots=True)
class FlvInput:
    """The input's messages, split into what is sent once and what is looped."""

    path: Path
    size_bytes: int
    metadata: bytes | None  # the onMetaData script body, sent as @setDataFrame
    headers: tuple[tuple[int, bytes], ...]  # (type_id, body): AVC and AAC sequence headers
    media: tuple[tuple[int, int, bytes], ...]  # (type_id, timestamp_ms from 0, body)
    period_ms: int  # loop length: last timestamp + one frame interval
    keyframes_ms: tuple[int, ...]  # media times of the video keyframes in one period

    @property
    def media_bytes_per_s(self) -> float:
        return sum(len(body) for _, _, body in self.media) * 1000 / self.period_ms


def _is_sequence_header(type_id: int, body: bytes) -> bool:
    return (
        len(body) >= 2
        and body[1] == SEQUENCE_HEADER
        and (
            (type_id == TAG_TYPE_VIDEO and body[0] & 0x0F == 7)
            or (type_id == TAG_TYPE_AUDIO and body[0] >> 4 == 10)
        )
    )


def _is_keyframe(body: bytes) -> bool:
    return len(body) > 1 and body[0] == AVC_KEYFRAME_NALU and body[1] == AVC_PACKET_NALU


def load_flv(path: str | Path) -> FlvInput:
    path = Path(path)
    data = path.read_bytes()
    metadata = None
    headers: list[tuple[int, bytes]] = []
    media: list[tuple[int, int, bytes]] = []
    for tag_type, timestamp_ms, body in iter_flv_tags(data):
        if tag_type == TAG_TYPE_SCRIPT:
            metadata = metadata or body
        elif tag_type in (TAG_TYPE_AUDIO, TAG_TYPE_VIDEO):
            if _is_sequence_header(tag_type, body):
                if all(t != tag_type for t, _ in headers):
                    headers.append((tag_type, body))
            else:
                media.append((tag_type, timestamp_ms, body))
    if not media:
        raise ValueError(f"{path}: no audio/video tags")
    first_ms = min(t for _, t, _ in media)
    media = [(k, t - first_ms, b) for k, t, b in media]
    video_ts = sorted(t for k, t, _ in media if k == TAG_TYPE_VIDEO)
    steps = [b - a for a, b in itertools.pairwise(video_ts) if b > a]
    frame_ms = min(steps) if steps else 40
    keyframes = tuple(t for k, t, b in media if k == TAG_TYPE_VIDEO and _is_keyframe(b))
    return FlvInput(
        path=path,
        size_bytes=len(data),
        metadata=metadata,
        headers=tuple(headers),
        media=tuple(media),
        period_ms=max(t for _, t, _ in media) + frame_ms,
        keyframes_ms=keyframes,
    )


@dataclass(slots=True)
class ChunkPlan:
    """Encoded messages: `data[ends[i-1]:ends[i]]` is message i, due at `times_ms[i]`."""

    data: bytes
    times_ms: array[int]
    ends: array[int]
    keyframes_ms: array[int]  # media time of each keyframe message ...
    keyframe_ends: array[int]  # ... and the byte offset right after it
    duration_ms: int

    def count_due(self, media_ms: float) -> int:
        """How many messages are due by `media_ms`."""
        return bisect.bisect_right(self.times_ms, media_ms)


class PlanBuilder:
    """Encodes an FlvInput loop after loop (with one writer, so headers stay consistent)."""

    def __init__(self, flv: FlvInput, chunk_size: int, stream_id: int = DEFAULT_STREAM_ID) -> None:
        self.flv = flv
        self.stream_id = stream_id
        self.writer = ChunkWriter(chunk_size)
        self.loop = 0

    def preamble(self) -> bytes:
        """onMetaData and the sequence headers, at time 0."""
        parts = []
        if self.flv.metadata is not None:
            body = amf0.encode_values("@setDataFrame") + self.flv.metadata
            parts.append(self._encode(MessageType.DATA_AMF0, 0, body))
        for type_id, body in self.flv.headers:
            parts.append(self._encode(type_id, 0, body))
        return b"".join(parts)

    def _encode(self, type_id: int, timestamp_ms: int, body: bytes) -> bytes:
        csid = VIDEO_CSID if type_id == TAG_TYPE_VIDEO else AUDIO_CSID
        return self.writer.encode(csid, timestamp_ms, type_id, self.stream_id, body)

    def next_loop(
        self,
        parts: list[bytes],
        times: array[int],
        ends: array[int],
        keys: array[int],
        key_ends: array[int],
        offset: int,
    ) -> int:
        """Append one loop's messages; returns the new byte offset."""
        shift = self.loop * self.flv.period_ms
        encode = self._encode
        for type_id, ts, body in self.flv.media:
            chunk = encode(type_id, ts + shift, body)
            parts.append(chunk)
            offset += len(chunk)
            times.append(ts + shift)
            ends.append(offset)
            if type_id == TAG_TYPE_VIDEO and _is_keyframe(body):
                keys.append(ts + shift)
                key_ends.append(offset)
        self.loop += 1
        return offset


def build_plan(
    flv: FlvInput, chunk_size: int, duration_ms: int, stream_id: int = DEFAULT_STREAM_ID
) -> ChunkPlan:
    """The chunk stream of a publish lasting at least `duration_ms` of media."""
    builder = PlanBuilder(flv, chunk_size, stream_id)
    head = builder.preamble()
    parts = [head]
    times, ends = array("q", [0]), array("q", [len(head)])
    keys, key_ends = array("q"), array("q")
    offset = len(head)
    while builder.loop * flv.period_ms < duration_ms:
        offset = builder.next_loop(parts, times, ends, keys, key_ends, offset)
    return ChunkPlan(b"".join(parts), times, ends, keys, key_ends, builder.loop * flv.period_ms)


def expected_segments(keyframes_ms: list[int], frag_duration_ms: int) -> int:
    """Segments a keyframe-aligned cutter makes of a publish whose keyframes are these (the
    last, partial segment included): cut at the first keyframe at least FD after the start."""
    if not keyframes_ms:
        return 0
    count, start = 1, keyframes_ms[0]
    for t in keyframes_ms[1:]:
        if t - start >= frag_duration_ms:
            count += 1
            start = t
    return count
