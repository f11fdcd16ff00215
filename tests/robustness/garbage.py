"""Hostile sessions for the bad-input test and the soak script: random and mutated RTMP byte
streams, half-open handshakes and malformed HTTP requests, each sent over a real socket.

`Attack.run()` opens one connection, sends its bytes (blind: the server's C2 and replies are
never needed, it does not validate C2), reads whatever comes back until the server closes or
`SESSION_DEADLINE_S` passes, and reports how the session ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass

from livechannel.rtmp import amf0
from livechannel.rtmp.chunk import ChunkWriter
from livechannel.rtmp.client import ClientConnection
from livechannel.rtmp.connection import ServerConnection
from livechannel.rtmp.events import PublishRequested
from livechannel.rtmp.handshake import HANDSHAKE_SIZE
from livechannel.rtmp.messages import MessageType

SESSION_DEADLINE_S = 3.0  # a hostile session is abandoned (closed by us) after this
C0C1_BYTES = 1 + HANDSHAKE_SIZE
# A half-open handshake waits this long for the server to close it (its timeouts are shorter).
HALF_OPEN_HOLD_S = 60.0

Tag = tuple[int, int, bytes]


def record_publish(app: str, stream: str, tc_url: str, tags: list[Tag]) -> bytes:
    """What a well-behaved publisher sends for `tags`, recorded against an in-memory server."""
    client = ClientConnection(app, stream, tc_url)
    server = ServerConnection()
    sent = bytearray()
    client.initiate()
    for _ in range(20):  # the command ping-pong settles in a few rounds
        data = client.data_to_send()
        sent += data
        server.receive_data(data)
        while (event := server.next_event()) is not None:
            if isinstance(event, PublishRequested):
                server.accept_publish(event.stream_id)
        client.receive_data(server.data_to_send())
        while client.next_event() is not None:
            pass
        if client.stream_id is not None and client.state.name == "PUBLISHING":
            break
    for kind, ts, body in tags:
        type_id = MessageType.VIDEO if kind == 9 else MessageType.AUDIO
        client.send_message(type_id, ts, body, csid=6 if kind == 9 else 4)
    sent += client.data_to_send()
    return bytes(sent)


def mutate(data: bytes, rng: random.Random, keep: int = C0C1_BYTES) -> bytes:
    """Flip, insert, delete, duplicate or truncate at a few random places after `keep`."""
    out = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        if len(out) <= keep + 1:
            break
        at = rng.randrange(keep, len(out))
        action = rng.choice(("flip", "insert", "delete", "dup", "truncate", "byte"))
        if action == "flip":
            out[at] ^= 1 << rng.randrange(8)
        elif action == "byte":
            out[at] = rng.randrange(256)
        elif action == "insert":
            out[at:at] = rng.randbytes(rng.randint(1, 64))
        elif action == "delete":
            del out[at : at + rng.randint(1, 64)]
        elif action == "dup":
            out[at:at] = out[at : at + rng.randint(1, 512)]
        else:
            del out[at:]
    return bytes(out)


def _chunks(*messages: tuple[int, int, int, bytes]) -> bytes:
    writer = ChunkWriter()
    return b"".join(
        writer.encode(csid, 0, type_id, sid, body) for csid, type_id, sid, body in messages
    )


def _handshake_and_connect() -> bytes:
    c2 = bytes(HANDSHAKE_SIZE)
    connect = amf0.encode_values("connect", 1.0, {"app": "live", "tcUrl": "rtmp://x/live"})
    return b"\x03" + bytes(HANDSHAKE_SIZE) + c2 + _chunks((3, MessageType.COMMAND_AMF0, 0, connect))


HTTP_GARBAGE = (
    b"GET /live/../../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /live/%2e%2e/%2e%2e/etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /live/a%00b HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /live/" + b"a" * 5000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET / HTTP/9.9\r\n\r\n",
    b"BREW /pot HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /?max-keys=" + b"9" * 5000 + b"&live HTTP/1.1\r\nHost: x\r\n\r\n",
    b"PUT /live/c?live HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n<?xml",
    b"PUT /live/c?live HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\n<a>",
    b"PUT /live/c?live HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    b"GET /live/c?OSSAccessKeyId=AK&Expires=1&Signature=abc HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /live/c HTTP/1.1\r\nHost: x\r\nAuthorization: OSS a:b:c\r\nDate: nope\r\n\r\n",
    b"GET /live/c HTTP/1.1\r\nHost: x\r\nX-Big: " + b"y" * 20000 + b"\r\n\r\n",
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",  # a TLS ClientHello on the plain port
    b"GET /live/c HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
    b"DELETE /live/?delete HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n<!DOCTYPE ",
)
BILLION_LAUGHS = (
    b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;">'
    b'<!ENTITY c "&b;&b;&b;&b;&b;">]><LiveChannelConfiguration>&c;</LiveChannelConfiguration>'
)
XXE = (
    b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
    b"<LiveChannelConfiguration><Description>&e;</Description></LiveChannelConfiguration>"
)


def _xml_request(bucket: str, body: bytes) -> bytes:
    head = f"PUT /{bucket}/xml?live HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n"
    return head.encode() + body


@dataclass(frozen=True, slots=True)
class Attack:
    kind: str
    port: str  # "rtmp" or "http": which listening port
    data: bytes
    hold_s: float = 0.0  # keep the socket open (silent) this long after sending

    @property
    def detail(self) -> str:
        return f"{self.kind} on the {self.port} port, {len(self.data)} bytes"


@dataclass(frozen=True, slots=True)
class Outcome:
    kind: str
    # "closed by server"; "answered" (a reply came, the connection stayed open: HTTP
    # keep-alive, we closed it); "abandoned" (no reply, still open at our deadline: we closed
    # it); "connect failed"
    ended: str
    seconds: float


class AttackFactory:
    """Draws attacks; `recording` is a real publish session (bytes) to mutate; hostile XML
    goes to `xml_bucket` (a public-read-write one reaches the parser without a signature)."""

    def __init__(self, recording: bytes, rng: random.Random, xml_bucket: str = "live") -> None:
        self.recording = recording
        self.rng = rng
        self.xml_bucket = xml_bucket
        self._kinds: list[tuple[str, Callable[[], Attack]]] = [
            ("random bytes", self._random),
            ("random after handshake", self._after_handshake),
            ("random after connect", self._after_connect),
            ("mutated session", self._mutated),
            ("oversized message", self._oversized),
            ("broken AMF", self._broken_amf),
            ("malformed HTTP", self._http),
            ("hostile XML", self._xml),
        ]

    @property
    def kinds(self) -> list[str]:
        return [name for name, _ in self._kinds]

    def draw(self) -> Attack:
        _, make = self.rng.choice(self._kinds)
        return make()

    def half_open(self) -> Attack:
        """A handshake that stops half-way (or never starts), then holds the socket open."""
        cut = self.rng.choice((0, 1, 100, C0C1_BYTES, C0C1_BYTES + 700))
        data = (b"\x03" + self.rng.randbytes(HANDSHAKE_SIZE * 2))[:cut]
        return Attack(
            "half-open handshake", self.rng.choice(("rtmp", "http")), data, hold_s=HALF_OPEN_HOLD_S
        )

    def _port(self) -> str:
        return self.rng.choice(("rtmp", "http"))

    def _random(self) -> Attack:
        return Attack("random bytes", self._port(), self.rng.randbytes(self.rng.randint(1, 4096)))

    def _after_handshake(self) -> Attack:
        data = b"\x03" + bytes(HANDSHAKE_SIZE * 2) + self.rng.randbytes(self.rng.randint(1, 4096))
        return Attack("random after handshake", self._port(), data)

    def _after_connect(self) -> Attack:
        data = _handshake_and_connect() + self.rng.randbytes(self.rng.randint(1, 4096))
        return Attack("random after connect", self._port(), data)

    def _mutated(self) -> Attack:
        return Attack("mutated session", self._port(), mutate(self.recording, self.rng))

    def _oversized(self) -> Attack:
        # A chunk header announcing a 16 MB video message (more than any limit allows).
        header = bytes((0x06, 0, 0, 0, 0xFF, 0xFF, 0xFF, MessageType.VIDEO, 1, 0, 0, 0))
        return Attack("oversized message", self._port(), _handshake_and_connect() + header)

    def _broken_amf(self) -> Attack:
        body = b"\x02\x00\x07connect\x00\x3f\xf0" + self.rng.randbytes(self.rng.randint(0, 64))
        data = b"\x03" + bytes(HANDSHAKE_SIZE * 2) + _chunks((3, MessageType.COMMAND_AMF0, 0, body))
        return Attack("broken AMF", self._port(), data)

    def _http(self) -> Attack:
        return Attack("malformed HTTP", "http", self.rng.choice(HTTP_GARBAGE))

    def _xml(self) -> Attack:
        body = self.rng.choice((BILLION_LAUGHS, XXE))
        return Attack("hostile XML", "http", _xml_request(self.xml_bucket, body))


def run(attack: Attack, ports: dict[str, int], source_ip: str = "127.0.0.1") -> Outcome:
    start = time.monotonic()
    try:
        sock = socket.create_connection(
            ("127.0.0.1", ports[attack.port]), timeout=SESSION_DEADLINE_S,
            source_address=(source_ip, 0),
        )  # fmt: skip
    except OSError:
        return Outcome(attack.kind, "connect failed", time.monotonic() - start)
    with sock:
        try:
            sock.sendall(attack.data)
        except OSError:
            return Outcome(attack.kind, "closed by server", time.monotonic() - start)
        deadline = start + (attack.hold_s or SESSION_DEADLINE_S)
        answered = False
        while (left := deadline - time.monotonic()) > 0:
            sock.settimeout(min(left, 1.0))
            try:
                if not sock.recv(65536):
                    return Outcome(attack.kind, "closed by server", time.monotonic() - start)
                answered = True
            except TimeoutError:
                continue
            except OSError:
                return Outcome(attack.kind, "closed by server", time.monotonic() - start)
    ended = "answered" if answered else "abandoned"
    return Outcome(attack.kind, ended, time.monotonic() - start)


async def run_async(attack: Attack, ports: dict[str, int], source_ip: str = "127.0.0.1") -> Outcome:
    """`run` for an asyncio attacker (the soak script keeps a thousand of these open)."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", ports[attack.port],
                                    local_addr=(source_ip, 0)), SESSION_DEADLINE_S)  # fmt: skip
    except (OSError, TimeoutError):
        return Outcome(attack.kind, "connect failed", loop.time() - start)
    ended = "abandoned"
    try:
        writer.write(attack.data)
        deadline = start + (attack.hold_s or SESSION_DEADLINE_S)
        while (left := deadline - loop.time()) > 0:
            try:
                if not await asyncio.wait_for(reader.read(65536), left):
                    ended = "closed by server"
                    break
                ended = "answered"
            except TimeoutError:
                break
    except OSError:
        ended = "closed by server"
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    return Outcome(attack.kind, ended, loop.time() - start)
