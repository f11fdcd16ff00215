"""A publisher of our own: asyncio + the sans-IO `ClientConnection`, replaying FLV tags.

Real encoders only send what they send; this one lets a test craft what they might: any
timestamp (through `timestamp_map`, applied to every media and data message), type-0 headers
on every message (so timestamps past 0xFFFFFF travel as extended timestamps, repeated on each
type-3 continuation chunk of a message longer than the chunk size), tag lists spliced from
several files (a mid-stream resolution change), or extra `@setDataFrame` messages.

    result = publish_sync(url, read_flv(path), timestamp_map=lambda ts: ts + 0xFFFFFF - 3000)

Bounded in time: every wait has a deadline, and the socket is closed on every way out.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from livechannel.media.flv import TAG_TYPE_AUDIO, TAG_TYPE_SCRIPT, TAG_TYPE_VIDEO, iter_flv_tags
from livechannel.rtmp import amf0
from livechannel.rtmp.client import (
    ClientConnection,
    ErrorReceived,
    PublishStarted,
    StatusReceived,
)
from livechannel.rtmp.messages import MessageType

CONNECT_TIMEOUT_S = 10.0  # loopback: connect + handshake + publish take milliseconds
CLOSE_TIMEOUT_S = 10.0  # after unpublish, the server flushes one segment at most
DRAIN_EVERY_BYTES = 256 * 1024  # let the server push back (paused reading) this often
READ_BYTES = 64 * 1024
# Not a command the server knows: it answers `_error`, after every message sent before it.
SYNC_COMMAND = "livechannelTestSync"
RTMP_PORT = 1935  # RTMP's registered port, when the URL names none
_TYPE_IDS = {
    TAG_TYPE_AUDIO: MessageType.AUDIO,
    TAG_TYPE_VIDEO: MessageType.VIDEO,
    TAG_TYPE_SCRIPT: MessageType.DATA_AMF0,
}


@dataclass(frozen=True, slots=True)
class FlvTag:
    type_id: int  # FLV tag type: 8 audio, 9 video, 18 script data
    timestamp_ms: int
    body: bytes

    @property
    def is_video_keyframe(self) -> bool:
        # FLV video tag: FrameType 1 (key) in the high nibble; AVCPacketType 1 (NALU).
        return self.type_id == TAG_TYPE_VIDEO and self.body[0] >> 4 == 1 and self.body[1] == 1

    @property
    def is_sequence_header(self) -> bool:
        return self.type_id in (TAG_TYPE_AUDIO, TAG_TYPE_VIDEO) and self.body[1] == 0


def read_flv(path: str | Path) -> list[FlvTag]:
    return [FlvTag(t, ts, body) for t, ts, body in iter_flv_tags(Path(path).read_bytes())]


def set_data_frame(values: dict[str, object], timestamp_ms: int = 0) -> FlvTag:
    """An `onMetaData` script tag, as encoders repeat it (GStreamer: twice a second)."""
    body = amf0.encode_values("onMetaData", amf0.EcmaArray(values))
    return FlvTag(TAG_TYPE_SCRIPT, timestamp_ms, body)


@dataclass
class PublishResult:
    started: bool = False  # NetStream.Publish.Start arrived
    statuses: list[StatusReceived] = field(default_factory=list)
    errors: list[ErrorReceived] = field(default_factory=list)
    sent_tags: int = 0
    cut_off: bool = False  # the server closed the connection before we finished

    @property
    def refusal(self) -> StatusReceived | None:
        return next((s for s in self.statuses if s.level == "error"), None)


def split_url(url: str) -> tuple[str, int, str, str, str]:
    """(host, port, app, stream name with query, tcUrl), split as libavformat does for a
    path with more than one segment: the last one is the stream, the rest the app."""
    parts = urlsplit(url)
    path = parts.path.lstrip("/")
    app, _, stream = path.rpartition("/")
    if parts.query:
        stream += "?" + parts.query
    host = parts.hostname or "127.0.0.1"
    port = parts.port or RTMP_PORT
    return host, port, app, stream, f"rtmp://{parts.netloc}/{app}"


async def publish(
    url: str,
    tags: Iterable[FlvTag],
    *,
    timestamp_map: Callable[[int], int] = lambda ts: ts,
    chunk_size: int = 4096,
    type0_headers: bool = False,
) -> PublishResult:
    """Connect, publish, send every tag (mapped), wait until the server has read them all,
    unpublish and close. A refusal or kick stops the sending and shows in the result."""
    host, port, app, stream, tc_url = split_url(url)
    client = ClientConnection(app, stream, tc_url, chunk_size=chunk_size)
    result = PublishResult()
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), CONNECT_TIMEOUT_S)
    publishing = asyncio.Event()
    closed = asyncio.Event()
    synced = asyncio.Event()
    sync_txn = -1.0

    def collect() -> None:
        while (event := client.next_event()) is not None:
            if isinstance(event, StatusReceived):
                result.statuses.append(event)
                if event.level == "error":
                    closed.set()  # refused or kicked: stop sending
            elif isinstance(event, ErrorReceived) and event.transaction_id == sync_txn:
                synced.set()
            elif isinstance(event, ErrorReceived):
                result.errors.append(event)
                closed.set()
            elif isinstance(event, PublishStarted):
                result.started = True
                publishing.set()

    async def read_loop() -> None:
        try:
            while data := await reader.read(READ_BYTES):
                client.receive_data(data)
                collect()
                writer.write(client.data_to_send())  # acknowledgements
        except (ConnectionError, OSError):
            pass
        finally:
            closed.set()

    client.initiate()
    writer.write(client.data_to_send())
    reading = asyncio.create_task(read_loop())
    try:
        await _first(publishing, closed, CONNECT_TIMEOUT_S)
        if not result.started:
            return result
        unsent = 0
        for tag in tags:
            if closed.is_set():
                result.cut_off = True
                break
            _send(client, tag, timestamp_map(tag.timestamp_ms), type0_headers)
            data = client.data_to_send()
            writer.write(data)
            result.sent_tags += 1
            unsent += len(data)
            if unsent >= DRAIN_EVERY_BYTES:
                unsent = 0
                await writer.drain()
                await asyncio.sleep(0)  # let the reader see a kick
        if not closed.is_set():
            # A barrier: the server answers commands in order, so once it has answered this
            # one it has processed every tag, and a refusal of the stream has reached us.
            sync_txn = client.send_command(SYNC_COMMAND, None)
            writer.write(client.data_to_send())
            await _first(synced, closed, CLOSE_TIMEOUT_S)
            assert synced.is_set() or closed.is_set(), "the server never answered"
        if not closed.is_set():
            client.unpublish()
            writer.write(client.data_to_send())
            await writer.drain()
    except (ConnectionError, OSError):
        result.cut_off = True
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError, OSError, TimeoutError):
            await asyncio.wait_for(writer.wait_closed(), CLOSE_TIMEOUT_S)
        reading.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reading
    return result


def _send(client: ClientConnection, tag: FlvTag, timestamp_ms: int, type0: bool) -> None:
    type_id = _TYPE_IDS.get(tag.type_id)
    if type_id is None:
        return
    fmt = 0 if type0 else None
    if type_id is MessageType.DATA_AMF0:
        # An FLV script tag is `onMetaData` + values; publishers prefix `@setDataFrame`.
        body = amf0.encode_values("@setDataFrame") + tag.body
        client.send_message(type_id, timestamp_ms, body, csid=4, fmt=fmt)
    elif type_id is MessageType.VIDEO:
        client.send_message(type_id, timestamp_ms, tag.body, csid=6, fmt=fmt)
    else:
        client.send_message(type_id, timestamp_ms, tag.body, csid=4, fmt=fmt)


async def _first(a: asyncio.Event, b: asyncio.Event, timeout_s: float) -> None:
    waits = [asyncio.create_task(a.wait()), asyncio.create_task(b.wait())]
    try:
        await asyncio.wait(waits, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in waits:
            task.cancel()


def publish_sync(url: str, tags: Iterable[FlvTag], **options: object) -> PublishResult:
    """`publish` from a synchronous test (its own event loop; the service has another)."""
    return asyncio.run(publish(url, tags, **options))  # type: ignore[arg-type]
