"""`ClientConnection`: a sans-IO RTMP *publisher*, for our tests and the benchmark load generator.

It behaves like libavformat: connect, then releaseStream + FCPublish + createStream in one
burst, publish once the stream id arrives, media only after NetStream.Publish.Start is
expected by the caller (sending earlier is allowed, to imitate the nginx-rtmp relay).
The chunk-stream ids and our chunk size are parameters so tests can imitate other clients
(librtmp/OBS put everything on chunk stream 4).
"""

from __future__ import annotations

import secrets
from collections import deque
from dataclasses import dataclass
from enum import Enum
from typing import Any

from livechannel.rtmp import amf0, handshake
from livechannel.rtmp.chunk import DEFAULT_CHUNK_SIZE
from livechannel.rtmp.errors import LocalProtocolError, ProtocolError
from livechannel.rtmp.limits import DEFAULT_LIMITS, RtmpLimits
from livechannel.rtmp.messages import MessageType, amf_body, command_body, parse_command
from livechannel.rtmp.transport import MessageTransport

CLIENT_FLASH_VER = "FMLE/3.0 (compatible; livechannel)"  # the FMLE prefix publishers send
_SERVER_HANDSHAKE_SIZE = 1 + 2 * handshake.HANDSHAKE_SIZE  # S0 + S1 + S2
_CONNECT_TXN = 1.0  # connect always uses transaction 1 (§7.2.1.1)


@dataclass(frozen=True, slots=True)
class Connected:
    """`_result` of connect."""

    properties: dict[str, Any]
    info: dict[str, Any]


@dataclass(frozen=True, slots=True)
class StreamCreated:
    stream_id: int


@dataclass(frozen=True, slots=True)
class StatusReceived:
    """Any onStatus (Publish.Start included, which is also reported as PublishStarted)."""

    level: str
    code: str
    description: str
    stream_id: int = 0


@dataclass(frozen=True, slots=True)
class PublishStarted:
    stream_id: int


@dataclass(frozen=True, slots=True)
class ErrorReceived:
    """`_error` reply to one of our commands."""

    transaction_id: float
    info: Any


ClientEvent = Connected | StreamCreated | StatusReceived | PublishStarted | ErrorReceived


class ClientState(Enum):
    IDLE = "idle"
    AWAIT_S0S1S2 = "await S0+S1+S2"
    CONNECTING = "connect sent"
    CREATING_STREAM = "createStream sent"
    PUBLISH_SENT = "publish sent"
    PUBLISHING = "publishing"
    UNPUBLISHED = "unpublished"


class ClientConnection:
    def __init__(
        self,
        app: str,
        stream_name: str,
        tc_url: str,
        *,
        chunk_size: int = 4096,
        handshake_style: str = "simple",
        flash_ver: str = CLIENT_FLASH_VER,
        command_csid: int = 3,
        audio_csid: int = 4,
        video_csid: int = 6,
        limits: RtmpLimits = DEFAULT_LIMITS,
    ) -> None:
        if handshake_style not in ("simple", "digest"):
            raise LocalProtocolError(f"unknown handshake style {handshake_style!r}")
        self.app = app
        self.stream_name = stream_name
        self.tc_url = tc_url
        self._chunk_size = chunk_size
        self._style = handshake_style
        self._flash_ver = flash_ver
        self._command_csid = command_csid
        self._audio_csid = audio_csid
        self._video_csid = video_csid
        self._limits = limits
        self._transport = MessageTransport(limits)
        self._handshake_buf = bytearray()
        self._events: deque[ClientEvent] = deque()
        self._txn = _CONNECT_TXN
        self._create_txn = 0.0
        self.state = ClientState.IDLE
        self.stream_id: int | None = None

    # ----------------------------------------------------------------- public API

    def initiate(self) -> None:
        """Queue C0 + C1."""
        if self.state is not ClientState.IDLE:
            raise LocalProtocolError("initiate() called twice")
        random = secrets.token_bytes(handshake.HANDSHAKE_RANDOM_SIZE)
        self._transport.write_raw(
            handshake.client_c0_c1(style=self._style, time_ms=0, random=random)
        )
        self.state = ClientState.AWAIT_S0S1S2

    def receive_data(self, data: bytes) -> None:
        if self.state is ClientState.IDLE:
            raise LocalProtocolError("initiate() first")
        if not data:
            return
        self._transport.account(len(data))
        if self.state is ClientState.AWAIT_S0S1S2:
            data = self._handshake(data)
            if not data:
                return
        self._transport.feed(data)
        while (message := self._transport.next_message()) is not None:
            if message.type_id in (MessageType.COMMAND_AMF0, MessageType.COMMAND_AMF3):
                command = parse_command(amf_body(message.type_id, message.payload))
                values = (command.command_object, *command.args)
                self._on_command(command.name, command.transaction_id, values, message.stream_id)

    def next_event(self) -> ClientEvent | None:
        return self._events.popleft() if self._events else None

    def data_to_send(self) -> bytes:
        return self._transport.data_to_send()

    @property
    def bytes_received(self) -> int:
        return self._transport.bytes_received

    def send_metadata(self, values: dict[str, Any], timestamp_ms: int = 0) -> None:
        body = amf0.encode_values("@setDataFrame", "onMetaData", amf0.EcmaArray(values))
        self.send_message(MessageType.DATA_AMF0, timestamp_ms, body, csid=self._audio_csid)

    def send_video(self, timestamp_ms: int, payload: bytes) -> None:
        self.send_message(MessageType.VIDEO, timestamp_ms, payload, csid=self._video_csid)

    def send_audio(self, timestamp_ms: int, payload: bytes) -> None:
        self.send_message(MessageType.AUDIO, timestamp_ms, payload, csid=self._audio_csid)

    def send_message(
        self, type_id: int, timestamp_ms: int, payload: bytes, *, csid: int, fmt: int | None = None
    ) -> None:
        """Any message on our stream. `timestamp_ms` may pass 0xFFFFFF (extended timestamps,
        repeated on continuation chunks) and 2**32 (sent mod 2**32); `fmt` forces a header type."""
        if self.stream_id is None:
            raise LocalProtocolError("no stream yet: wait for StreamCreated")
        self._transport.send(csid, type_id, self.stream_id, payload, timestamp_ms, fmt=fmt)

    def send_command(self, name: str, command_object: Any, *args: Any, stream_id: int = 0) -> float:
        """Any AMF0 command with a fresh transaction id (returned); replies arrive as events."""
        txn = self._next_txn()
        self._command(name, txn, command_object, *args, stream_id=stream_id)
        return txn

    def unpublish(self) -> None:
        """FCUnpublish then deleteStream, as libavformat ends a publish."""
        if self.stream_id is None:
            raise LocalProtocolError("nothing published")
        self._command("FCUnpublish", self._next_txn(), None, self.stream_name)
        self._command("deleteStream", self._next_txn(), None, float(self.stream_id))
        self.state = ClientState.UNPUBLISHED

    # ------------------------------------------------------------------- internals

    def _next_txn(self) -> float:
        self._txn += 1
        return self._txn

    def _command(self, name: str, txn: float, *values: Any, stream_id: int = 0) -> None:
        body = command_body(name, txn, *values)
        self._transport.send(self._command_csid, MessageType.COMMAND_AMF0, stream_id, body)

    def _handshake(self, data: bytes) -> bytes:
        buf = self._handshake_buf
        buf += data
        if buf[0] != handshake.RTMP_VERSION:
            raise ProtocolError(f"server answered RTMP version {buf[0]}")
        if len(buf) < _SERVER_HANDSHAKE_SIZE:
            return b""
        s1 = bytes(buf[1 : 1 + handshake.HANDSHAKE_SIZE])
        rest = bytes(buf[_SERVER_HANDSHAKE_SIZE:])
        buf.clear()
        self._transport.write_raw(handshake.client_c2(s1))
        if self._chunk_size != DEFAULT_CHUNK_SIZE:
            self._transport.set_chunk_size(self._chunk_size)  # before connect, as OBS does
        properties = {
            "app": self.app,
            "type": "nonprivate",
            "flashVer": self._flash_ver,
            "tcUrl": self.tc_url,
        }
        self._command("connect", _CONNECT_TXN, properties)
        self.state = ClientState.CONNECTING
        return rest

    def _on_command(self, name: str, txn: float, args: tuple[Any, ...], stream_id: int) -> None:
        """`args` = command object followed by the further arguments."""
        if name == "_result" and txn == _CONNECT_TXN and self.state is ClientState.CONNECTING:
            properties = args[0] if args and isinstance(args[0], dict) else {}
            info = args[1] if len(args) > 1 and isinstance(args[1], dict) else {}
            self._events.append(Connected(dict(properties), dict(info)))
            # libavformat's burst: all three in one write.
            self._command("releaseStream", self._next_txn(), None, self.stream_name)
            self._command("FCPublish", self._next_txn(), None, self.stream_name)
            self._create_txn = self._next_txn()
            self._command("createStream", self._create_txn, None)
            self.state = ClientState.CREATING_STREAM
        elif (
            name == "_result"
            and txn == self._create_txn
            and self.state is ClientState.CREATING_STREAM
        ):
            if len(args) < 2 or not isinstance(args[1], float):
                raise ProtocolError("createStream result without a stream id")
            self.stream_id = int(args[1])
            self._events.append(StreamCreated(self.stream_id))
            self._command(
                "publish",
                self._next_txn(),
                None,
                self.stream_name,
                "live",
                stream_id=self.stream_id,
            )
            self.state = ClientState.PUBLISH_SENT
        elif name == "_error":
            self._events.append(ErrorReceived(txn, args[1] if len(args) > 1 else None))
        elif name == "onStatus":
            info = args[1] if len(args) > 1 and isinstance(args[1], dict) else {}
            level, code = str(info.get("level", "")), str(info.get("code", ""))
            description = str(info.get("description", ""))
            self._events.append(StatusReceived(level, code, description, stream_id))
            if code == "NetStream.Publish.Start" and self.state is ClientState.PUBLISH_SENT:
                self.state = ClientState.PUBLISHING
                self._events.append(PublishStarted(stream_id))
