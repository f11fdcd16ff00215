"""`ServerConnection`: the sans-IO RTMP server side of one TCP connection.

Bytes in (`receive_data`), events out (`next_event`), bytes out (`data_to_send`); no sockets,
no clock. Policy stays outside: on `PublishRequested` the edge calls `accept_publish` or
`reject_publish`. Quirks of real publishers handled here are listed in
docs/rtmp-clients.md; the command sequence follows the RTMP spec 1.0 §7.2.
"""

from __future__ import annotations

import secrets
from collections import deque
from collections.abc import Callable
from enum import Enum
from typing import Any, Final

from livechannel.rtmp import amf0, handshake
from livechannel.rtmp.aggregate import split_aggregate
from livechannel.rtmp.chunk import RawMessage
from livechannel.rtmp.errors import (
    AmfDecodeError,
    LocalProtocolError,
    MessageTooLarge,
    ProtocolError,
)
from livechannel.rtmp.events import (
    AudioData,
    ConnectRequested,
    Event,
    MetaData,
    PlayRefused,
    PublishRequested,
    Unpublished,
    VideoData,
)
from livechannel.rtmp.limits import DEFAULT_LIMITS, RtmpLimits
from livechannel.rtmp.messages import (
    AUDIO_TYPE_ID,
    VIDEO_TYPE_ID,
    Command,
    MessageType,
    PeerBandwidthLimit,
    UserControlEvent,
    amf_body,
    command_body,
    parse_command,
    set_peer_bandwidth_body,
    u32_body,
    user_control_body,
)
from livechannel.rtmp.transport import MessageTransport

# libavformat adopts the server's chunk size for what it sends; 64 KiB holds most video
# frames in one chunk, which cuts per-chunk work on our side.
SERVER_CHUNK_SIZE = 65536
# Window Ack Size / Set Peer Bandwidth we announce: the values FMS and nginx-rtmp use;
# clients do not wait for acknowledgements anyway.
SERVER_WINDOW_ACK_SIZE = 2_500_000
SERVER_PEER_BANDWIDTH = 2_500_000
COMMAND_CSID = 3  # our `_result` / `_error` replies
STATUS_CSID = 5  # our NetStream `onStatus` messages
FMS_VERSION = "FMS/3,5,7,7009"  # fmsVer in the connect reply: what clients expect to see
FMS_CAPABILITIES = 31.0  # the usual capability bits in the connect reply
# Enhanced RTMP ("Enhancing NetConnection connect Command", v1 and v2): the codecs (FourCC)
# the media layer takes, and the extended capabilities we handle. A client that announces
# `fourCcList`, `videoFourCcInfoMap`, `audioFourCcInfoMap` or `capsEx` gets ours back in the
# `_result` properties; legacy clients get the reply they always got.
ENHANCED_VIDEO_FOURCCS = ("avc1", "hvc1", "av01", "vp09")
ENHANCED_AUDIO_FOURCCS = ("mp4a",)
FOURCC_CAN_DECODE = 0x01  # FourCcInfoMask: we receive (and package) it; we encode nothing
CAPS_EX_MOD_EX = 0x04  # CapsExMask.ModEx: ModEx packets are parsed (and their data skipped)
ENHANCED_CONNECT_KEYS = ("fourCcList", "videoFourCcInfoMap", "audioFourCcInfoMap", "capsEx")
PLAY_REFUSED_DESCRIPTION: Final = "playing over RTMP is not supported; use the HLS play URL"


# (type_id, timestamp_ms, payload) of one audio (8) or video (9) message: see set_media_sink.
MediaSink = Callable[[int, int, bytes], None]


class ConnectionState(Enum):
    AWAIT_C0C1 = "await C0+C1"
    AWAIT_C2 = "await C2"
    AWAIT_CONNECT = "await connect"
    CONNECTED = "connected"
    PUBLISH_PENDING = "publish requested; awaiting accept/reject"
    PUBLISHING = "publishing"
    UNPUBLISHED = "unpublished"
    CLOSING = "closing"


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _status_info(level: str, code: str, description: str) -> dict[str, Any]:
    return {"level": level, "code": code, "description": description}


# Members the per-read and per-message code compares with, read off the class once (in
# Python 3.11 reading one goes through EnumType.__getattr__, ~900 instructions).
_AWAIT_C0C1, _AWAIT_C2 = ConnectionState.AWAIT_C0C1, ConnectionState.AWAIT_C2
_CLOSING = ConnectionState.CLOSING
_PUBLISHING = ConnectionState.PUBLISHING
_LAST_CONTROL_TYPE = int(MessageType.SET_PEER_BANDWIDTH)  # ids 1..6: protocol control (§5.4)


class ServerConnection:
    def __init__(
        self, *, server_chunk_size: int = SERVER_CHUNK_SIZE, limits: RtmpLimits = DEFAULT_LIMITS
    ) -> None:
        if not 1 <= server_chunk_size <= 0x7FFFFFFF:
            raise LocalProtocolError(f"server_chunk_size {server_chunk_size} out of range")
        self._server_chunk_size = server_chunk_size
        self._limits = limits
        self._transport = MessageTransport(limits)
        self._state = ConnectionState.AWAIT_C0C1
        self._handshake_buf = bytearray()
        self._events: deque[Event] = deque()
        self._held: list[Event] = []  # stream events after PublishRequested, before a decision
        self._held_bytes = 0
        self._app = ""
        self._next_stream_id = 1
        self._publish_id: int | None = None
        self._publish_name = ""
        self._unpublished = False
        self._media_sink: MediaSink | None = None

    # ------------------------------------------------------------------ public API

    @property
    def state(self) -> ConnectionState:
        return self._state

    @property
    def closing(self) -> bool:
        return self._state is ConnectionState.CLOSING

    @property
    def bytes_received(self) -> int:
        return self._transport.bytes_received

    def keyframe_remaining(self) -> int:
        """At least how many more bytes complete a video keyframe being received (0: none)."""
        return self._transport.reader.keyframe_remaining()

    def receive_data(self, data: bytes) -> bool:
        """Consume bytes from the peer. Raises ProtocolError when the peer misbehaves.
        Returns whether events or bytes to send now wait (False: nothing for the caller to
        do, the common case while media goes to the sink)."""
        state = self._state
        if state is _CLOSING or not data:
            return False
        if len(self._events) >= self._limits.max_queued_events:
            raise LocalProtocolError("drain next_event() before feeding more data")
        transport = self._transport
        transport.account(len(data))
        if state is _AWAIT_C0C1 or state is _AWAIT_C2:
            data = self._handshake(data)
            if not data:
                return bool(transport.output)
        transport.reader.feed(data)
        self._pump()
        return bool(self._events) or bool(transport.output)

    def next_event(self) -> Event | None:
        return self._events.popleft() if self._events else None

    def data_to_send(self) -> bytes:
        return self._transport.data_to_send()

    def set_media_sink(self, sink: MediaSink | None) -> None:
        """Hand the accepted publish's audio and video to `sink(type_id, timestamp_ms,
        payload)` from inside `receive_data` instead of queueing AudioData/VideoData: the
        ingest hot path then makes no event per message. The sink is used only while no
        event waits in the queue, so media never overtakes an earlier event; None (e.g. when
        the edge must stop taking media for a while) queues media as events again. The sink
        must not raise: `receive_data` would pass its exception on mid-input."""
        self._media_sink = sink

    def accept_publish(self, stream_id: int) -> None:
        """Send StreamBegin + NetStream.Publish.Start and release held media in order."""
        if self.closing:
            return  # the peer left (or was refused) while the edge was deciding
        if self._publish_id != stream_id or self._state is not ConnectionState.PUBLISH_PENDING:
            raise LocalProtocolError(f"no publish pending on stream {stream_id}")
        self._transport.send_control(
            MessageType.USER_CONTROL, user_control_body(UserControlEvent.STREAM_BEGIN, stream_id)
        )
        description = f"{self._publish_name} is now published."
        self.send_status(stream_id, "status", "NetStream.Publish.Start", description)
        self._state = (
            ConnectionState.UNPUBLISHED if self._unpublished else ConnectionState.PUBLISHING
        )
        self._events.extend(self._held)
        self._held.clear()
        self._held_bytes = 0

    def reject_publish(self, stream_id: int, code: str, description: str) -> None:
        """Send an error onStatus; from now on input is ignored and the edge closes TCP."""
        if self.closing:
            return
        if self._publish_id != stream_id:
            raise LocalProtocolError(f"no publish on stream {stream_id}")
        self._refuse(stream_id, code, description)

    def send_status(self, stream_id: int, level: str, code: str, description: str) -> None:
        if self._state in (ConnectionState.AWAIT_C0C1, ConnectionState.AWAIT_C2):
            raise LocalProtocolError("no RTMP session yet")
        body = command_body("onStatus", 0.0, None, _status_info(level, code, description))
        self._transport.send(STATUS_CSID, MessageType.COMMAND_AMF0, stream_id, body)

    # ------------------------------------------------------------------- handshake

    def _handshake(self, data: bytes) -> bytes:
        """Advance the handshake; return input left over for the chunk stream."""
        buf = self._handshake_buf
        buf += data
        if self._state is ConnectionState.AWAIT_C0C1:
            handshake.check_c0(buf[0])  # fail fast on HTTP or RTMPE sent to this port
            if len(buf) < 1 + handshake.HANDSHAKE_SIZE:
                return b""
            c1 = bytes(buf[1 : 1 + handshake.HANDSHAKE_SIZE])
            del buf[: 1 + handshake.HANDSHAKE_SIZE]
            random = secrets.token_bytes(handshake.HANDSHAKE_RANDOM_SIZE)
            self._transport.write_raw(handshake.server_reply(c1, time_ms=0, random=random))
            self._state = ConnectionState.AWAIT_C2
        if len(buf) < handshake.HANDSHAKE_SIZE:
            return b""
        rest = bytes(buf[handshake.HANDSHAKE_SIZE :])  # C2 itself is never validated
        buf.clear()
        self._state = ConnectionState.AWAIT_CONNECT
        return rest

    # -------------------------------------------------------------------- messages

    def _pump(self) -> None:
        transport = self._transport
        reader = transport.reader
        while self._state is not _CLOSING:
            message = reader.next_message()
            if message is None:
                return
            type_id = message.type_id
            if type_id == VIDEO_TYPE_ID or type_id == AUDIO_TYPE_ID:  # noqa: SIM109 - two compares beat a tuple
                # The media path: straight to the sink while publishing with nothing queued.
                sink = self._media_sink
                if sink is not None and self._state is _PUBLISHING and not self._events:
                    sink(type_id, message.timestamp_ms, message.payload)
                else:
                    self._on_media(message)
            elif type_id <= _LAST_CONTROL_TYPE and type_id >= 1:
                transport.control(message)
            else:
                self._dispatch(message, type_id)

    def _dispatch(self, message: RawMessage, type_id: int) -> None:
        if type_id == MessageType.VIDEO or type_id == MessageType.AUDIO:
            self._on_media(message)
        elif type_id == MessageType.COMMAND_AMF0 or type_id == MessageType.COMMAND_AMF3:
            self._on_command(message)
        elif type_id == MessageType.DATA_AMF0 or type_id == MessageType.DATA_AMF3:
            self._on_data(message)
        elif type_id == MessageType.AGGREGATE:
            for sub in split_aggregate(message.payload, message.timestamp_ms):
                if sub.type_id != MessageType.AGGREGATE:
                    part = RawMessage(
                        message.csid, sub.timestamp_ms, sub.type_id, message.stream_id, sub.payload
                    )
                    self._dispatch(part, sub.type_id)
        # Shared objects and unknown types: nothing a publisher needs from us.

    def _stream_open(self) -> bool:
        return self._publish_id is not None and not self._unpublished and not self.closing

    def _deliver(self, event: Event, size: int) -> None:
        """Stream events wait while the publish is undecided (nginx-rtmp's relay sends media
        without waiting for Publish.Start), so the edge sees them in order after accepting."""
        if self._state is not ConnectionState.PUBLISH_PENDING:
            self._events.append(event)
            return
        self._held.append(event)
        self._held_bytes += size
        if self._held_bytes > self._limits.max_held_media_bytes:
            raise MessageTooLarge(
                f"more than {self._limits.max_held_media_bytes} bytes before Publish.Start"
            )

    def _on_media(self, message: RawMessage) -> None:
        if not self._stream_open():
            return  # before publish (or after unpublish) media has no home
        sink = self._media_sink
        if sink is not None and not self._events and self._state is ConnectionState.PUBLISHING:
            sink(message.type_id, message.timestamp_ms, message.payload)
            return
        kind = VideoData if message.type_id == MessageType.VIDEO else AudioData
        self._deliver(
            kind(message.stream_id, message.timestamp_ms, message.payload), len(message.payload)
        )

    def _on_data(self, message: RawMessage) -> None:
        if not self._stream_open():
            return
        try:
            values = amf0.decode_values(
                amf_body(message.type_id, message.payload), max_depth=self._limits.max_amf_depth
            )
        except AmfDecodeError:
            return  # metadata is advisory: an undecodable one is not worth the connection
        if values[:1] == ["@setDataFrame"]:
            values = values[1:]
        if len(values) >= 2 and values[0] == "onMetaData" and isinstance(values[1], dict):
            self._deliver(MetaData(dict(values[1])), len(message.payload))

    def _on_command(self, message: RawMessage) -> None:
        command = parse_command(
            amf_body(message.type_id, message.payload), max_depth=self._limits.max_amf_depth
        )
        if self._state is ConnectionState.AWAIT_CONNECT and command.name != "connect":
            raise ProtocolError(f"command {command.name!r} before connect")
        handler = _COMMANDS.get(command.name)
        if handler is not None:
            handler(self, command, message)
        elif command.transaction_id != 0:
            self._reply(
                "_error",
                command,
                None,
                _status_info(
                    "error", "NetConnection.Call.Failed", f"unknown command {command.name!r}"
                ),
            )

    def _reply(self, name: str, command: Command, *values: Any) -> None:
        body = command_body(name, command.transaction_id, *values)
        self._transport.send(COMMAND_CSID, MessageType.COMMAND_AMF0, 0, body)

    def _refuse(self, stream_id: int, code: str, description: str) -> None:
        self.send_status(stream_id, "error", code, description)
        self._state = ConnectionState.CLOSING
        self._held.clear()
        self._held_bytes = 0

    # -------------------------------------------------------------------- commands

    def _ignore(self, command: Command, message: RawMessage) -> None:
        pass

    def _on_connect(self, command: Command, message: RawMessage) -> None:
        if self._state is not ConnectionState.AWAIT_CONNECT:
            raise ProtocolError("connect sent twice on one connection")
        properties = (
            dict(command.command_object) if isinstance(command.command_object, dict) else {}
        )
        transport = self._transport
        transport.send_control(MessageType.WINDOW_ACK_SIZE, u32_body(SERVER_WINDOW_ACK_SIZE))
        transport.send_control(
            MessageType.SET_PEER_BANDWIDTH,
            set_peer_bandwidth_body(SERVER_PEER_BANDWIDTH, PeerBandwidthLimit.DYNAMIC),
        )
        transport.set_chunk_size(self._server_chunk_size)
        info = _status_info("status", "NetConnection.Connect.Success", "Connection succeeded.")
        info["objectEncoding"] = 0.0
        reply: dict[str, Any] = {"fmsVer": FMS_VERSION, "capabilities": FMS_CAPABILITIES}
        if any(key in properties for key in ENHANCED_CONNECT_KEYS):
            reply.update(enhanced_capabilities(properties))
        self._reply("_result", command, reply, info)
        self._app = _text(properties.get("app"))
        self._state = ConnectionState.CONNECTED
        self._events.append(
            ConnectRequested(
                self._app,
                _text(properties.get("tcUrl")),
                _text(properties.get("flashVer")),
                properties,
            )
        )

    def _on_fc_call(self, command: Command, message: RawMessage) -> None:
        # releaseStream / FCPublish: GStreamer sends them with transaction 0 (no reply wanted).
        if command.transaction_id != 0:
            self._reply("_result", command, None)

    def _on_create_stream(self, command: Command, message: RawMessage) -> None:
        stream_id = self._next_stream_id
        self._next_stream_id += 1
        self._reply("_result", command, None, float(stream_id))

    def _on_publish(self, command: Command, message: RawMessage) -> None:
        stream_id = message.stream_id
        if not command.args or not isinstance(command.args[0], str):
            raise ProtocolError("publish without a stream name")
        if self._publish_id is not None:
            self._refuse(stream_id, "NetStream.Publish.BadName", "one publish per connection")
            return
        name = command.args[0]
        publish_type = (
            command.args[1]
            if len(command.args) > 1 and isinstance(command.args[1], str)
            else "live"
        )
        self._publish_id = stream_id
        self._publish_name = name
        self._state = ConnectionState.PUBLISH_PENDING
        self._events.append(PublishRequested(stream_id, self._app, name, publish_type))

    def _on_play(self, command: Command, message: RawMessage) -> None:
        name = _text(command.args[0]) if command.args else ""
        self._refuse(message.stream_id, "NetStream.Play.Failed", PLAY_REFUSED_DESCRIPTION)
        self._events.append(PlayRefused(message.stream_id, name))

    def _on_fc_unpublish(self, command: Command, message: RawMessage) -> None:
        if command.transaction_id != 0:
            self._reply("_result", command, None)
        self._unpublish()

    def _on_delete_stream(self, command: Command, message: RawMessage) -> None:
        target = command.args[0] if command.args else None
        # GStreamer names the stream instead of giving its number.
        if isinstance(target, float) and target != self._publish_id:
            return
        self._unpublish()

    def _on_close_stream(self, command: Command, message: RawMessage) -> None:
        if message.stream_id not in (0, self._publish_id):
            return
        self._unpublish()

    def _unpublish(self) -> None:
        if self._publish_id is None or self._unpublished or self.closing:
            return
        self._unpublished = True
        if self._state is ConnectionState.PUBLISHING:
            self._state = ConnectionState.UNPUBLISHED
        self._deliver(Unpublished(self._publish_id), 0)


def enhanced_capabilities(properties: dict[str, Any]) -> dict[str, Any]:
    """Our side of the Enhanced RTMP negotiation: the client's FourCCs that we take (all of
    ours when it names none we know, so it still learns what to send), and the info maps."""
    offered = properties.get("fourCcList")
    names = [n for n in offered if isinstance(n, str)] if isinstance(offered, list) else []
    video = [f for f in ENHANCED_VIDEO_FOURCCS if f in names or "*" in names]
    return {
        "fourCcList": video or list(ENHANCED_VIDEO_FOURCCS),
        "videoFourCcInfoMap": {f: float(FOURCC_CAN_DECODE) for f in ENHANCED_VIDEO_FOURCCS},
        "audioFourCcInfoMap": {f: float(FOURCC_CAN_DECODE) for f in ENHANCED_AUDIO_FOURCCS},
        "capsEx": float(CAPS_EX_MOD_EX),
    }


# The command table is the class's, not each connection's: bound methods stored on the
# instance would make every connection a reference cycle that only a full GC pass frees (and
# with it whatever the connection still held).
_Handler = Callable[[ServerConnection, Command, RawMessage], None]
_COMMANDS: Final[dict[str, _Handler]] = {
    "connect": ServerConnection._on_connect,
    "releaseStream": ServerConnection._on_fc_call,
    "FCPublish": ServerConnection._on_fc_call,
    "createStream": ServerConnection._on_create_stream,
    "publish": ServerConnection._on_publish,
    "play": ServerConnection._on_play,
    "play2": ServerConnection._on_play,
    "FCUnpublish": ServerConnection._on_fc_unpublish,
    "deleteStream": ServerConnection._on_delete_stream,
    "closeStream": ServerConnection._on_close_stream,
    # Replies and notifications from the peer need no answer.
    "_result": ServerConnection._ignore,
    "_error": ServerConnection._ignore,
    "onStatus": ServerConnection._ignore,
    "onBWDone": ServerConnection._ignore,
}
