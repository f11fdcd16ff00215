"""Byte-level scripting of RTMP peers for tests: what a given client would put on the wire,
and a decoder for what the server sends back. Built on the core's own ChunkWriter/ChunkReader
(whose byte tables are tested separately), so scripts can reproduce any client's quirks; and
`Pair`, our own sans-IO client wired to the server in memory."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from livechannel.rtmp import amf0, handshake
from livechannel.rtmp.chunk import ChunkReader, ChunkWriter, RawMessage
from livechannel.rtmp.client import ClientConnection, PublishStarted
from livechannel.rtmp.connection import ServerConnection
from livechannel.rtmp.events import Event, PublishRequested
from livechannel.rtmp.messages import (
    Command,
    MessageType,
    amf_body,
    parse_command,
    parse_u32_body,
    u32_body,
)

FIXED_RANDOM = bytes(range(256)) * 6  # 1536 bytes, deterministic
SERVER_HANDSHAKE_BYTES = 1 + 2 * handshake.HANDSHAKE_SIZE


class ScriptedPeer:
    """Builds a client's byte stream message by message."""

    def __init__(self, *, style: str = "simple") -> None:
        self.writer = ChunkWriter()
        self.style = style

    def c0c1(self) -> bytes:
        return handshake.client_c0_c1(
            style=self.style, time_ms=0, random=FIXED_RANDOM[: handshake.HANDSHAKE_RANDOM_SIZE]
        )

    def c2(self, s1: bytes | None = None) -> bytes:
        # An arbitrary C2 unless one is given: the server must not validate it.
        return s1 if s1 is not None else FIXED_RANDOM[::-1][: handshake.HANDSHAKE_SIZE]

    def set_chunk_size(self, size: int) -> bytes:
        data = self.writer.encode(2, 0, MessageType.SET_CHUNK_SIZE, 0, u32_body(size))
        self.writer.chunk_size = size
        return data

    def control(self, type_id: int, body: bytes) -> bytes:
        return self.writer.encode(2, 0, type_id, 0, body)

    def command(
        self, name: str, txn: float, obj: Any, *args: Any, csid: int = 3, stream_id: int = 0
    ) -> bytes:
        body = amf0.encode_values(name, txn, obj, *args)
        return self.writer.encode(csid, 0, MessageType.COMMAND_AMF0, stream_id, body)

    def data(self, *values: Any, csid: int = 4, stream_id: int = 1, timestamp_ms: int = 0) -> bytes:
        body = amf0.encode_values(*values)
        return self.writer.encode(csid, timestamp_ms, MessageType.DATA_AMF0, stream_id, body)

    def media(
        self, type_id: int, timestamp_ms: int, payload: bytes, *, csid: int, stream_id: int = 1
    ) -> bytes:
        return self.writer.encode(csid, timestamp_ms, type_id, stream_id, payload)

    def connect(self, app: str = "live", **extra: Any) -> bytes:
        props = {"app": app, "type": "nonprivate", "tcUrl": f"rtmp://127.0.0.1/{app}", **extra}
        return self.command("connect", 1.0, props)


@dataclass
class ServerView:
    """Decodes the server's output: handshake, then chunked messages (applying its chunk size)."""

    raw: bytearray = field(default_factory=bytearray)
    reader: ChunkReader = field(default_factory=ChunkReader)
    messages: list[RawMessage] = field(default_factory=list)

    def feed(self, data: bytes) -> None:
        if len(self.raw) < SERVER_HANDSHAKE_BYTES:
            need = SERVER_HANDSHAKE_BYTES - len(self.raw)
            self.raw += data[:need]
            data = data[need:]
        self.reader.feed(data)
        while (message := self.reader.next_message()) is not None:
            if message.type_id == MessageType.SET_CHUNK_SIZE:
                self.reader.set_chunk_size(parse_u32_body(message.payload, "chunk size"))
            self.messages.append(message)

    @property
    def s1(self) -> bytes:
        return bytes(self.raw[1 : 1 + handshake.HANDSHAKE_SIZE])

    def commands(self) -> list[tuple[int, Command]]:
        """(message stream id, command) for every command message so far."""
        return [
            (m.stream_id, parse_command(amf_body(m.type_id, m.payload)))
            for m in self.messages
            if m.type_id in (MessageType.COMMAND_AMF0, MessageType.COMMAND_AMF3)
        ]

    def statuses(self) -> list[tuple[int, dict[str, Any]]]:
        return [(sid, c.args[0]) for sid, c in self.commands() if c.name == "onStatus"]


class Session:
    """A ServerConnection plus a view of its output; events are drained after every feed."""

    def __init__(
        self, server: ServerConnection | None = None, *, auto_accept: bool = False
    ) -> None:
        self.server = server if server is not None else ServerConnection()
        self.view = ServerView()
        self.events: list[Event] = []
        self.auto_accept = auto_accept

    def feed(self, data: bytes) -> None:
        self.server.receive_data(data)
        self.drain()

    def drain(self) -> None:
        while (event := self.server.next_event()) is not None:
            self.events.append(event)
            if self.auto_accept and isinstance(event, PublishRequested):
                self.server.accept_publish(event.stream_id)
        self.view.feed(self.server.data_to_send())

    def handshake(self, peer: ScriptedPeer, *, echo: bool = True) -> None:
        self.feed(peer.c0c1())
        self.feed(peer.c2(self.view.s1 if echo else None))

    def of_type(self, kind: type) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]


class Pair:
    """A ClientConnection wired to a ServerConnection in memory."""

    def __init__(self, server: ServerConnection | None = None, **client_kwargs: Any) -> None:
        self.server = server if server is not None else ServerConnection()
        self.client = ClientConnection(
            "live", "chan?sig=x", "rtmp://127.0.0.1/live", **client_kwargs
        )
        self.server_events: list[Event] = []
        self.client_events: list[Any] = []
        self.client.initiate()

    def pump(self) -> None:
        for _ in range(20):
            to_server = self.client.data_to_send()
            if to_server:
                self.server.receive_data(to_server)
            to_client = self.server.data_to_send()
            if to_client:
                self.client.receive_data(to_client)
            while (event := self.server.next_event()) is not None:
                self.server_events.append(event)
            while (client_event := self.client.next_event()) is not None:
                self.client_events.append(client_event)
            if not to_server and not to_client:
                return
        raise AssertionError("pair did not settle")

    def publish_request(self) -> PublishRequested:
        self.pump()
        requests = [e for e in self.server_events if isinstance(e, PublishRequested)]
        assert len(requests) == 1
        return requests[0]

    def publishing(self) -> None:
        self.server.accept_publish(self.publish_request().stream_id)
        self.pump()
        assert any(isinstance(e, PublishStarted) for e in self.client_events)
