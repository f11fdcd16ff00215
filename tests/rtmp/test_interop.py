"""The sans-IO core against real publishers (ffmpeg, GStreamer rtmp2sink / rtmpsink) over a
loopback socket, with a minimal asyncio loop standing in for the ingest edge."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from livechannel.rtmp.connection import ServerConnection
from livechannel.rtmp.errors import RtmpError
from livechannel.rtmp.events import (
    AudioData,
    ConnectRequested,
    Event,
    MetaData,
    PublishRequested,
    Unpublished,
    VideoData,
)
from tests.support.publishers import ffmpeg_live, gst_live

PUBLISHER_TIMEOUT_S = 60.0  # a 1-second live publisher plus encoder start-up, generously
READ_SIZE = 65536  # what an asyncio edge typically reads at once

Decision = Callable[[ServerConnection, PublishRequested], None]


def accept(conn: ServerConnection, request: PublishRequested) -> None:
    conn.accept_publish(request.stream_id)


def reject(conn: ServerConnection, request: PublishRequested) -> None:
    conn.reject_publish(request.stream_id, "NetStream.Publish.BadName", "no such channel")


@dataclass
class Recorded:
    events: list[Event] = field(default_factory=list)
    errors: list[RtmpError] = field(default_factory=list)


async def _serve_one(decide: Decision, recorded: Recorded) -> tuple[asyncio.Server, int]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = ServerConnection()
        try:
            while data := await reader.read(READ_SIZE):
                conn.receive_data(data)
                while (event := conn.next_event()) is not None:
                    recorded.events.append(event)
                    if isinstance(event, PublishRequested):
                        decide(conn, event)
                writer.write(conn.data_to_send())
                await writer.drain()
                if conn.closing:
                    break
        except RtmpError as exc:
            recorded.errors.append(exc)
        except ConnectionError:
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def _publish(cmd: list[str]) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        *cmd, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
    )
    try:
        _, err = await asyncio.wait_for(proc.communicate(), PUBLISHER_TIMEOUT_S)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise AssertionError(f"{cmd[0]} overran {PUBLISHER_TIMEOUT_S}s") from None
    assert proc.returncode is not None
    return proc.returncode, err.decode(errors="replace")


def _command(client: str, url: str) -> list[str]:
    if client == "ffmpeg":
        return ffmpeg_live(url, duration_s=1.0, size="320x240", gop_s=0.5)
    return gst_live(url, sink=client, duration_s=1.0, gop_frames=15)


async def _run(client: str, name: str, decide: Decision) -> tuple[int, str, Recorded]:
    recorded = Recorded()
    server, port = await _serve_one(decide, recorded)
    async with server:
        code, err = await _publish(_command(client, f"rtmp://127.0.0.1:{port}/live/{name}"))
    return code, err, recorded


@pytest.mark.parametrize("client", ["ffmpeg", "rtmp2sink", "rtmpsink"])
async def test_real_publisher_is_received_whole(client: str) -> None:
    code, err, recorded = await _run(client, "chan?sig=a%2Bb", accept)
    assert recorded.errors == []
    assert code == 0, err
    events = recorded.events
    connect, request = events[0], events[1]
    assert isinstance(connect, ConnectRequested) and connect.app == "live"
    assert isinstance(request, PublishRequested)
    # ffmpeg and rtmp2sink keep %XX escapes; librtmp decodes them before sending.
    assert request.name == ("chan?sig=a+b" if client == "rtmpsink" else "chan?sig=a%2Bb")
    video = [e for e in events if isinstance(e, VideoData)]
    audio = [e for e in events if isinstance(e, AudioData)]
    assert video[0].payload[:2] == b"\x17\x00"  # AVC sequence header first
    assert audio[0].payload[1:2] == b"\x00"  # AAC sequence header first
    assert len(video) >= 25 and len(audio) >= 35  # ~1 s at 30 fps and 44.1 kHz / 1024
    assert any(isinstance(e, MetaData) for e in events)
    dts = [e.timestamp_ms for e in video[1:]]
    assert dts == sorted(dts) and dts[-1] >= 800
    if client != "rtmpsink":  # librtmp just closes the socket at EOS
        assert isinstance(events[-1], Unpublished)


@pytest.mark.parametrize("client", ["ffmpeg", "rtmp2sink", "rtmpsink"])
async def test_real_publisher_stops_when_rejected(client: str) -> None:
    code, _, recorded = await _run(client, "chan", reject)
    assert recorded.errors == []
    assert code != 0
    assert not any(isinstance(e, VideoData | AudioData) for e in recorded.events)
