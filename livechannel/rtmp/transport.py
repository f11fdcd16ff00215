"""The RTMP message transport both ends share: chunk reader + writer and the protocol control
messages every peer must honour (RTMP spec 1.0 §5.4 and the ping of §7.1.7).

It hands everything that is not protocol control (commands, data, media, unknown types) up
to the connection; it reacts to the rest by itself: Set Chunk Size, Abort, Window
Acknowledgement Size (then it acknowledges every window of received bytes), Set Peer
Bandwidth (accepted, nothing to adjust: we send little), PingRequest (answered).
"""

from __future__ import annotations

from livechannel.rtmp.chunk import ChunkReader, ChunkWriter, RawMessage
from livechannel.rtmp.errors import ProtocolError
from livechannel.rtmp.limits import RtmpLimits
from livechannel.rtmp.messages import (
    PROTOCOL_CONTROL_CSID,
    MessageType,
    UserControlEvent,
    parse_set_peer_bandwidth,
    parse_u32_body,
    parse_user_control,
    u32_body,
    user_control_body,
)

_LAST_CONTROL_TYPE = MessageType.SET_PEER_BANDWIDTH  # ids 1..6 are protocol control (§5.4)
_SEQUENCE_MASK = 0xFFFFFFFF  # the acknowledgement sequence number is a wrapping u32
_CHUNK_SIZE_TOP_BIT = 0x80000000  # §5.4.1: must be zero


class MessageTransport:
    def __init__(self, limits: RtmpLimits) -> None:
        self._limits = limits
        self.reader = ChunkReader(limits)
        self.writer = ChunkWriter()
        self.output = bytearray()  # bytes to send, taken by data_to_send()
        self.bytes_received = 0
        self._peer_window = 0  # 0 = the peer never asked for acknowledgements
        self._acked_at = 0

    # ------------------------------------------------------------------------ input

    def account(self, n: int) -> None:
        """Count `n` received bytes (handshake included, §5.4.3) and acknowledge each window."""
        self.bytes_received += n
        window = self._peer_window
        if window and self.bytes_received - self._acked_at >= window:
            self._acked_at = self.bytes_received
            self.send_control(
                MessageType.ACKNOWLEDGEMENT, u32_body(self.bytes_received & _SEQUENCE_MASK)
            )

    def feed(self, data: bytes) -> None:
        self.reader.feed(data)

    def next_message(self) -> RawMessage | None:
        """The next message that is not protocol control, or None when input is exhausted."""
        reader = self.reader
        while (message := reader.next_message()) is not None:
            if not 1 <= message.type_id <= _LAST_CONTROL_TYPE:
                return message
            self.control(message)
        return None

    def control(self, message: RawMessage) -> None:
        """React to a protocol control message (type ids 1..6)."""
        type_id, payload = message.type_id, message.payload
        if type_id == MessageType.SET_CHUNK_SIZE:
            size = parse_u32_body(payload, "Set Chunk Size")
            if size & _CHUNK_SIZE_TOP_BIT or not 1 <= size <= self._limits.max_peer_chunk_size:
                raise ProtocolError(
                    f"Set Chunk Size {size} outside 1..{self._limits.max_peer_chunk_size}"
                )
            self.reader.set_chunk_size(size)
        elif type_id == MessageType.ABORT:
            self.reader.abort(parse_u32_body(payload, "Abort"))
        elif type_id == MessageType.ACKNOWLEDGEMENT:
            parse_u32_body(payload, "Acknowledgement")  # nothing to do: we never wait for acks
        elif type_id == MessageType.WINDOW_ACK_SIZE:
            self._peer_window = parse_u32_body(payload, "Window Acknowledgement Size")
        elif type_id == MessageType.SET_PEER_BANDWIDTH:
            parse_set_peer_bandwidth(payload)
        else:  # USER_CONTROL
            event, data = parse_user_control(payload)
            if event == UserControlEvent.PING_REQUEST:
                timestamp = parse_u32_body(data, "PingRequest")
                self.send_control(
                    MessageType.USER_CONTROL,
                    user_control_body(UserControlEvent.PING_RESPONSE, timestamp),
                )
            # Stream Begin/EOF/Dry, Set Buffer Length, PingResponse...: nothing for us to do.

    # ----------------------------------------------------------------------- output

    def write_raw(self, data: bytes) -> None:
        """Handshake bytes, which precede the chunk stream."""
        self.output += data

    def send(
        self,
        csid: int,
        type_id: int,
        stream_id: int,
        payload: bytes,
        timestamp_ms: int = 0,
        *,
        fmt: int | None = None,
    ) -> None:
        self.output += self.writer.encode(csid, timestamp_ms, type_id, stream_id, payload, fmt=fmt)

    def send_control(self, type_id: MessageType, body: bytes) -> None:
        self.send(PROTOCOL_CONTROL_CSID, type_id, 0, body)

    def set_chunk_size(self, size: int) -> None:
        """Announce our chunk size (in the old size) and use it from the next message on."""
        self.send_control(MessageType.SET_CHUNK_SIZE, u32_body(size))
        self.writer.chunk_size = size

    def data_to_send(self) -> bytes:
        if not self.output:
            return b""  # the common case on the media path: nothing to say
        data = bytes(self.output)
        self.output.clear()
        return data
