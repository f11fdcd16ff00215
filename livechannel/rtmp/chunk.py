"""The RTMP chunk stream (RTMP spec 1.0 §5.3): messages ⇄ interleaved chunks.

`ChunkReader` reassembles messages from chunks; `ChunkWriter` splits messages into chunks
with header compression. Both keep per-chunk-stream state exactly as the spec and
libavformat do, so each decodes what the other encodes:

- basic header in 1/2/3-byte form (csid 2..63, 64..319, 64..65599);
- message header type 0 (absolute timestamp), 1 (delta, length, type), 2 (delta), 3 (none);
- a type 3 chunk that starts a new message reuses the previous timestamp field as its delta
  (after a type 0 header that field is the absolute timestamp, as §5.3.1.2.4 says);
- the extended timestamp (§5.3.1.3): a 0xFFFFFF field means 4 more bytes follow, and every
  type 3 chunk on that chunk stream repeats them until the next type 0/1/2 header;
- timestamps are 32-bit and wrap: absolute = (previous + delta) mod 2**32.

The reader consumes chunk payloads as they arrive (it never waits for a whole chunk) and keeps
no reference to the input once `next_message` has returned None: a message that fits one
chunk of the input is copied out once; the pieces of one that spans chunks or reads are
copied as they come and joined at its end, each counted against `max_partial_bytes` with its
object's overhead, so what a connection holds is what the limit counts (a slice of the input
would pin the whole input buffer while counting only itself, which a peer could use to hold
far more memory than the limit says). Leftover input between feeds is
at most one partial chunk header, copied.

Consecutive continuation chunks of one message (type 3 headers of the same chunk stream, one
after the other in the input: a large frame in small chunks) are taken in one step: the
header bytes are checked with one strided slice and cut out with one strided delete, so a
128-byte chunk costs C work instead of a pass through the Python header parser.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from livechannel.media.flv import FRAME_TYPE_KEY, video_frame_type
from livechannel.rtmp.errors import LocalProtocolError, MessageTooLarge, ProtocolError
from livechannel.rtmp.limits import DEFAULT_LIMITS, RtmpLimits
from livechannel.rtmp.messages import VIDEO_TYPE_ID

DEFAULT_CHUNK_SIZE = 128  # §5.4.1: both directions start with 128-byte chunks
MAX_CHUNK_SIZE = 0x7FFFFFFF  # §5.4.1: Set Chunk Size is 31 bits, the top bit must be 0
EXTENDED_TIMESTAMP = 0xFFFFFF  # §5.3.1.3: the 24-bit field value announcing 4 more bytes
TIMESTAMP_MASK = 0xFFFFFFFF  # RTMP timestamps are 32-bit and wrap
_HALF_RANGE = 1 << 31  # a wrapped delta at or above this means "backwards": use type 0
MIN_CSID = 2  # 0 and 1 select the 2- and 3-byte basic header forms
MAX_CSID = 65599  # 3-byte form: 64 + 0xFFFF
_MESSAGE_HEADER_SIZE = (11, 7, 3, 0)  # by header type (fmt)
_CONTINUATION = 3 << 6  # fmt 3 in the top bits of a basic header
# What one held piece of a partial message costs beyond its bytes (object header, list slot):
# counted, so that a peer sending tiny chunks cannot hold more than the limit says.
_PIECE_OVERHEAD = 64
# From this chunk size up, a run of continuation chunks is taken as a slice per chunk (a few
# per video frame): one copy of each, where the strided cut copies the run, moves it once
# more to close the gaps, and needs two memoryviews. Smaller chunks keep the strided cut: a
# Python step per 128-byte chunk would cost more than the copies it saves.
SLICED_CHUNK_BYTES = 1024
_ONE_WORD = struct.Struct(">I").unpack_from
_TWO_WORDS = struct.Struct(">II").unpack_from


class RawMessage(NamedTuple):
    """One reassembled RTMP message (before any interpretation of its type)."""

    csid: int
    timestamp_ms: int
    type_id: int
    stream_id: int
    payload: bytes


# RawMessage's own __new__ is a Python function (NamedTuple makes one): a message is built
# with the tuple's, as that one would build it, once per message.
_new_message = tuple.__new__


class _ReadStream:
    """Reader state of one chunk stream."""

    __slots__ = (
        "cost",
        "delta_ms",
        "extended",
        "fast",
        "length",
        "parts",
        "received",
        "stream_id",
        "timestamp_ms",
        "type_id",
    )

    def __init__(self, csid: int) -> None:
        self.timestamp_ms = 0
        self.delta_ms = 0  # the last timestamp field, reused by a type 3 new message
        self.extended = False  # the last type 0/1/2 header carried an extended timestamp
        self.length = 0
        self.type_id = 0
        self.stream_id = 0
        self.parts: list[bytes | bytearray] = []  # the open message's pieces (copies)
        self.cost = 0  # what they count against max_partial_bytes
        self.received = -1  # bytes of the current message so far; -1 = no message open
        # The one-byte type 3 header of a continuation chunk on this stream, for the fast path
        # (-1: none, because the csid needs a longer basic header or timestamps are extended).
        self.fast = _CONTINUATION | csid if csid < 64 else -1


class ChunkReader:
    """Feed bytes, pull messages. The caller applies Set Chunk Size / Abort between messages
    (they take effect for the very next chunk). Once `next_message` has returned None the
    reader holds no reference to what it was fed, so the caller may reuse that buffer."""

    def __init__(self, limits: RtmpLimits = DEFAULT_LIMITS) -> None:
        self._limits = limits
        self.chunk_size = DEFAULT_CHUNK_SIZE
        self._buf = b""
        self._pos = 0
        self._streams: dict[int, _ReadStream] = {}
        self._current: _ReadStream | None = None  # stream whose chunk payload is being read
        self._current_csid = 0
        self._chunk_left = 0
        self._partial_bytes = 0

    @property
    def buffered(self) -> int:
        """Unparsed input bytes (at most one partial chunk header between feeds)."""
        return len(self._buf) - self._pos

    @property
    def held_bytes(self) -> int:
        """Bytes of partial messages held, as counted against `max_partial_bytes`."""
        return self._partial_bytes

    def keyframe_remaining(self) -> int:
        """At least how many more input bytes complete a video keyframe being received (0: none
        is): its payload still to come and one header byte per chunk it needs. A reader that
        batches reads asks to be woken once that much has arrived, for a keyframe is what
        cuts a segment."""
        for stream in self._streams.values():
            received = stream.received
            if received <= 0 or stream.type_id != VIDEO_TYPE_ID or not stream.parts:
                continue
            if video_frame_type(stream.parts[0][0]) != FRAME_TYPE_KEY:
                continue
            rest = stream.length - received
            in_chunk = self._chunk_left if stream is self._current else 0
            return rest + -(-(rest - in_chunk) // self.chunk_size)
        return 0

    def feed(self, data: bytes) -> None:
        if not isinstance(data, bytes):
            data = bytes(data)  # slices of the input must be copies
        if self._pos < len(self._buf):
            data = self._buf[self._pos :] + data
        self._buf = data
        self._pos = 0

    def set_chunk_size(self, size: int) -> None:
        """Apply the peer's Set Chunk Size (already range-checked by the caller)."""
        self.chunk_size = size

    def abort(self, csid: int) -> None:
        """Abort Message (§5.4.2): drop the partial message of that chunk stream."""
        stream = self._streams.get(csid)
        if stream is not None and stream.received >= 0 and stream is not self._current:
            self._partial_bytes -= stream.cost
            stream.parts = []
            stream.cost = 0
            stream.received = -1

    def next_message(self) -> RawMessage | None:
        """The next complete message, or None when more input is needed."""
        buf = self._buf
        end = len(buf)
        pos = self._pos
        while True:
            stream = self._current
            if stream is None:
                header_end = self._parse_header(buf, pos, end)
                if header_end < 0:
                    self._buf = buf[pos:]  # a partial header (a copy), not the input
                    self._pos = 0
                    return None
                pos = header_end
                stream = self._current
                assert stream is not None
                if stream.length == 0:  # an empty message has no payload chunk
                    self._current = None
                    stream.received = -1
                    self._pos = pos
                    fields = (self._current_csid, stream.timestamp_ms, stream.type_id,
                              stream.stream_id, b"")  # fmt: skip
                    return _new_message(RawMessage, fields)
            avail = end - pos
            if avail <= 0:
                self._buf = b""
                self._pos = 0
                return None
            left = self._chunk_left
            take = left if left <= avail else avail
            received = stream.received
            length = stream.length
            if received == 0 and take == length:
                payload = buf[pos : pos + take]  # the whole message in one chunk: one copy
                pos += take
                self._chunk_left = 0
                self._current = None
            else:
                parts = stream.parts
                parts.append(buf[pos : pos + take])
                cost = take + _PIECE_OVERHEAD
                pos += take
                received += take
                if take < left:
                    self._chunk_left = left - take
                else:
                    self._chunk_left = 0
                    self._current = None
                    if received < length and pos < end and buf[pos] == stream.fast:
                        start, pieces = received, len(parts)
                        pos, received = self._continuations(stream, buf, pos, end, received)
                        cost += received - start + _PIECE_OVERHEAD * (len(parts) - pieces)
                stream.cost += cost
                self._partial_bytes += cost
                if self._partial_bytes > self._limits.max_partial_bytes:
                    raise MessageTooLarge(
                        f"more than {self._limits.max_partial_bytes} bytes of partial messages"
                    )
                if received < length:
                    stream.received = received
                    continue
                payload = b"".join(parts)
                self._partial_bytes -= stream.cost
                stream.parts = []
                stream.cost = 0
            stream.received = -1
            self._pos = pos
            fields = (self._current_csid, stream.timestamp_ms, stream.type_id, stream.stream_id,
                      payload)  # fmt: skip
            return _new_message(RawMessage, fields)

    def _continuations(
        self,
        stream: _ReadStream,
        buf: bytes,
        pos: int,
        end: int,
        received: int,
    ) -> tuple[int, int]:
        """Take the run of one-byte type 3 continuation chunks of `stream` starting at `pos`
        (a chunk just ended there and its header byte is the stream's). Small chunks: copy the
        run as one piece and cut the header bytes out of it, both in C; from SLICED_CHUNK_BYTES
        up: a slice per chunk. Returns (pos, received)."""
        size = self.chunk_size
        step = size + 1
        rest = stream.length - received
        span = rest + -(-rest // size)  # the rest of the message with its headers
        if span > end - pos:
            span = end - pos
        heads = buf[pos : pos + span : step]
        count = len(heads)
        good = count - len(heads.lstrip(heads[:1]))
        if good < count:  # another chunk stream's chunk comes between: stop before it
            span = good * step
            count = good
        # Where the last chunk of the run starts, and how much of it came (all, or up to the
        # end of the input).
        last = pos + (count - 1) * step + 1
        last_taken = pos + span - last
        if size >= SLICED_CHUNK_BYTES:
            parts = stream.parts
            for start in range(pos + 1, last, step):
                parts.append(buf[start : start + size])
            parts.append(buf[last : pos + span])
        else:
            piece = bytearray(memoryview(buf)[pos : pos + span])
            del piece[::step]
            stream.parts.append(piece)
        taken = span - count
        last_full = rest - (count - 1) * size
        if last_full > size:
            last_full = size
        if last_taken < last_full:
            self._current = stream
            self._chunk_left = last_full - last_taken
        return pos + span, received + taken

    def _parse_header(self, buf: bytes, pos: int, end: int) -> int:
        """Parse one chunk header at `pos`; return the offset after it, or -1 if incomplete."""
        if pos >= end:
            return -1
        first = buf[pos]
        fmt = first >> 6
        csid = first & 0x3F
        p = pos + 1
        if csid == 0:
            if end - p < 1:
                return -1
            csid = buf[p] + 64
            p += 1
        elif csid == 1:
            if end - p < 2:
                return -1
            csid = buf[p] + (buf[p + 1] << 8) + 64
            p += 2
        header_size = _MESSAGE_HEADER_SIZE[fmt]
        if end - p < header_size:
            return -1
        stream = self._streams.get(csid)
        if stream is None:
            # A first header of type 1 (librtmp sends some control messages that way) is
            # read against zeroed state; types 2/3 would leave the length unknown.
            if fmt >= 2:
                raise ProtocolError(f"chunk stream {csid} starts with a type {fmt} header")
            if len(self._streams) >= self._limits.max_chunk_streams:
                raise ProtocolError(f"more than {self._limits.max_chunk_streams} chunk streams")
            stream = _ReadStream(csid)
            self._streams[csid] = stream
        opening = stream.received < 0
        if fmt == 3:
            q = p
            if stream.extended:
                if end - q < 4:
                    return -1
                if opening:  # a new message: the 4 bytes are its delta
                    stream.delta_ms = int.from_bytes(buf[q : q + 4], "big")
                q += 4  # on a continuation chunk they repeat the header's value: skip
            if opening:
                stream.timestamp_ms = (stream.timestamp_ms + stream.delta_ms) & TIMESTAMP_MASK
        else:
            if not opening:
                raise ProtocolError(
                    f"type {fmt} header on chunk stream {csid} inside an unfinished message"
                )
            # The 24-bit fields are the low bits of big-endian words that start a byte
            # earlier (that byte is the basic header's): one C call reads them all.
            if fmt <= 1:
                word, more = _TWO_WORDS(buf, p - 1)  # timestamp field | length, type id
            else:
                (word,) = _ONE_WORD(buf, p - 1)  # timestamp field (delta)
            field = word & 0xFFFFFF
            q = p + header_size
            extended = field == EXTENDED_TIMESTAMP
            if extended:
                if end - q < 4:
                    return -1
                (field,) = _ONE_WORD(buf, q)
                q += 4
            if fmt <= 1:
                length = more >> 8
                if length > self._limits.max_message_bytes:
                    raise MessageTooLarge(
                        f"message of {length} bytes exceeds {self._limits.max_message_bytes}"
                    )
                stream.length = length
                stream.type_id = more & 0xFF
                if fmt == 0:
                    stream.stream_id = int.from_bytes(buf[p + 7 : p + 11], "little")
            if extended != stream.extended:
                stream.extended = extended
                # the fast path knows only the one-byte header without the 4 repeated bytes
                stream.fast = -1 if extended or csid >= 64 else _CONTINUATION | csid
            stream.delta_ms = field
            if fmt == 0:
                stream.timestamp_ms = field
            else:
                stream.timestamp_ms = (stream.timestamp_ms + field) & TIMESTAMP_MASK
        if opening:
            stream.received = 0
        remaining = stream.length - stream.received
        self._chunk_left = remaining if remaining < self.chunk_size else self.chunk_size
        self._current = stream
        self._current_csid = csid
        return q


class _WriteStream:
    """Writer state of one chunk stream (mirrors what the reader will remember)."""

    __slots__ = ("absolute", "field", "length", "stream_id", "timestamp_ms", "type_id")

    def __init__(
        self, timestamp_ms: int, field: int, length: int, type_id: int, stream_id: int
    ) -> None:
        self.timestamp_ms = timestamp_ms
        self.field = field  # the last timestamp field written (absolute after type 0)
        self.absolute = True
        self.length = length
        self.type_id = type_id
        self.stream_id = stream_id


def basic_header(fmt: int, csid: int) -> bytes:
    """The 1/2/3-byte basic header (§5.3.1.1), shortest form."""
    if not MIN_CSID <= csid <= MAX_CSID:
        raise LocalProtocolError(f"chunk stream id {csid} outside {MIN_CSID}..{MAX_CSID}")
    if csid < 64:
        return bytes(((fmt << 6) | csid,))
    if csid < 320:
        return bytes((fmt << 6, csid - 64))
    rest = csid - 64
    return bytes(((fmt << 6) | 1, rest & 0xFF, rest >> 8))


class ChunkWriter:
    """Encodes messages into chunks, choosing the smallest header the reader can decode.

    Reusable on its own to pre-build a whole chunk stream (the benchmark load generator)."""

    def __init__(self, chunk_size: int = DEFAULT_CHUNK_SIZE) -> None:
        self._chunk_size = DEFAULT_CHUNK_SIZE
        self.chunk_size = chunk_size
        self._streams: dict[int, _WriteStream] = {}

    @property
    def chunk_size(self) -> int:
        return self._chunk_size

    @chunk_size.setter
    def chunk_size(self, size: int) -> None:
        if not 1 <= size <= MAX_CHUNK_SIZE:
            raise LocalProtocolError(f"chunk size {size} outside 1..{MAX_CHUNK_SIZE}")
        self._chunk_size = size

    def _choose_fmt(
        self, prev: _WriteStream | None, ts: int, length: int, type_id: int, stream_id: int
    ) -> int:
        if prev is None or prev.stream_id != stream_id:
            return 0
        delta = (ts - prev.timestamp_ms) & TIMESTAMP_MASK
        if delta >= _HALF_RANGE:
            return 0  # going backwards (e.g. interleaved A/V): restate the absolute time
        if length != prev.length or type_id != prev.type_id:
            return 1
        # A type 3 after a type 0 reuses the absolute field as the delta (§5.3.1.2.4); some
        # servers read it as delta 0 instead, so only rely on it when the two agree.
        if delta == prev.field and (not prev.absolute or prev.field == 0):
            return 3
        return 2

    def encode(
        self,
        csid: int,
        timestamp_ms: int,
        type_id: int,
        stream_id: int,
        payload: bytes,
        *,
        fmt: int | None = None,
    ) -> bytes:
        """Chunks of one message. `timestamp_ms` may exceed 2**32 (it is sent mod 2**32).
        `fmt` forces a header type (tests craft streams with it); it must be decodable."""
        ts = timestamp_ms & TIMESTAMP_MASK
        length = len(payload)
        if length > 0xFFFFFF:
            raise LocalProtocolError(f"message of {length} bytes does not fit the 24-bit length")
        prev = self._streams.get(csid)
        chosen = self._choose_fmt(prev, ts, length, type_id, stream_id)
        if fmt is not None and fmt != chosen:
            self._check_forced(fmt, prev, ts, length, type_id, stream_id)
            chosen = fmt
        field = ts if prev is None or chosen == 0 else (ts - prev.timestamp_ms) & TIMESTAMP_MASK
        extended = field >= EXTENDED_TIMESTAMP
        ext = field.to_bytes(4, "big") if extended else b""
        stored = EXTENDED_TIMESTAMP if extended else field
        head = [basic_header(chosen, csid)]
        if chosen <= 2:
            head.append(stored.to_bytes(3, "big"))
        if chosen <= 1:
            head.append(length.to_bytes(3, "big") + bytes((type_id,)))
        if chosen == 0:
            head.append(stream_id.to_bytes(4, "little"))
        head.append(ext)
        self._remember(prev, chosen, csid, ts, field, length, type_id, stream_id)
        size = self._chunk_size
        if length <= size:
            head.append(payload)
            return b"".join(head)
        continuation = basic_header(3, csid) + ext
        view = memoryview(payload)
        pieces: list[bytes | memoryview] = [b"".join(head), view[:size]]
        for start in range(size, length, size):
            pieces.append(continuation)
            pieces.append(view[start : start + size])
        return b"".join(pieces)

    def _check_forced(
        self,
        fmt: int,
        prev: _WriteStream | None,
        ts: int,
        length: int,
        type_id: int,
        stream_id: int,
    ) -> None:
        if fmt == 0:
            return
        if fmt not in (1, 2, 3) or prev is None:
            raise LocalProtocolError(
                f"header type {fmt} needs an earlier message on this chunk stream"
            )
        if prev.stream_id != stream_id:
            raise LocalProtocolError("only a type 0 header can change the message stream id")
        if fmt >= 2 and (length != prev.length or type_id != prev.type_id):
            raise LocalProtocolError(f"header type {fmt} needs the previous length and type")
        if fmt == 3 and (ts - prev.timestamp_ms) & TIMESTAMP_MASK != prev.field:
            raise LocalProtocolError("header type 3 needs the previous timestamp delta")

    def _remember(
        self,
        prev: _WriteStream | None,
        fmt: int,
        csid: int,
        ts: int,
        field: int,
        length: int,
        type_id: int,
        stream_id: int,
    ) -> None:
        if prev is None:
            self._streams[csid] = _WriteStream(ts, field, length, type_id, stream_id)
            return
        prev.timestamp_ms = ts
        prev.length = length
        prev.type_id = type_id
        prev.stream_id = stream_id
        if fmt != 3:
            prev.field = field
            prev.absolute = fmt == 0
