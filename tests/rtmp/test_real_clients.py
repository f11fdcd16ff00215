"""Real publishers' wire behaviour (docs/rtmp-clients.md), scripted byte for byte."""

from __future__ import annotations

import pytest

from livechannel.rtmp.client import ClientConnection
from livechannel.rtmp.connection import ConnectionState, ServerConnection
from livechannel.rtmp.events import (
    AudioData,
    ConnectRequested,
    Event,
    MetaData,
    PublishRequested,
    Unpublished,
    VideoData,
)
from tests.support.rtmp_clients import (
    CLIENTS,
    KEYFRAME,
    ffmpeg,
    gstreamer_rtmp2,
    librtmp,
    nginx_relay,
    obs,
)
from tests.support.rtmp_peer import Session


def _stream_events(events: list[Event]) -> list[tuple[str, int]]:
    return [(type(e).__name__, getattr(e, "timestamp_ms", -1)) for e in events[2:]]


def test_ffmpeg() -> None:
    session = Session(auto_accept=True)
    ffmpeg(session)
    events = session.events
    connect, request = events[0], events[1]
    assert isinstance(connect, ConnectRequested)
    assert connect.flash_ver == "FMLE/3.0 (compatible; Lavf59.27.100)"
    assert request == PublishRequested(1, "live", "chan?sig=a%2Bb", "live")  # verbatim
    assert _stream_events(events) == [
        ("MetaData", -1),
        ("VideoData", 0),
        ("AudioData", 0),
        ("VideoData", 0),
        ("AudioData", 23),
        ("VideoData", 33),
        ("VideoData", 66),
        ("Unpublished", -1),
    ]
    assert session.of_type(VideoData)[1].payload == KEYFRAME
    replies = [
        (c.name, c.transaction_id) for _, c in session.view.commands() if c.name != "onStatus"
    ]
    assert replies == [
        ("_result", 1.0),
        ("_result", 2.0),
        ("_result", 3.0),
        ("_result", 4.0),
        ("_result", 6.0),
    ]
    create_result = next(c for _, c in session.view.commands() if c.transaction_id == 4.0)
    assert create_result.args == (1.0,)
    assert [s["code"] for _, s in session.view.statuses()] == ["NetStream.Publish.Start"]


def test_librtmp_everything_on_chunk_stream_4_in_128_byte_chunks() -> None:
    session = Session(auto_accept=True)
    librtmp(session)
    connect, request = session.events[0], session.events[1]
    assert isinstance(connect, ConnectRequested) and connect.flash_ver == ""
    assert isinstance(request, PublishRequested)
    assert request.name.encode("utf-8", "surrogateescape") == b"caf\xe9?sig=1"
    assert session.of_type(MetaData) == [MetaData({"width": 640.0})] * 2
    assert [
        (type(e).__name__, e.timestamp_ms)
        for e in session.events
        if isinstance(e, AudioData | VideoData)
    ] == [
        ("VideoData", 0),
        ("AudioData", 0),
        ("VideoData", 0),
        ("AudioData", 23),
        ("VideoData", 33),
        ("AudioData", 46),
    ]
    assert session.of_type(VideoData)[1].payload == KEYFRAME
    assert session.events[-1] == Unpublished(1)


def test_obs_chunk_size_before_connect_and_go_away_flag() -> None:
    session = Session(auto_accept=True)
    obs(session)
    connect = session.events[0]
    assert isinstance(connect, ConnectRequested)
    assert connect.properties["supportsGoAway"] is True
    assert connect.properties["swfUrl"] == connect.tc_url
    assert session.of_type(VideoData)[1].payload == KEYFRAME
    assert session.events[-1] == Unpublished(1)


def test_gstreamer_rtmp2_transaction_zero_and_delete_by_name() -> None:
    session = Session(auto_accept=True)
    gstreamer_rtmp2(session)
    replies = [
        (c.name, c.transaction_id) for _, c in session.view.commands() if c.name != "onStatus"
    ]
    assert replies == [("_result", 1.0), ("_result", 2.0)]  # connect, createStream only
    assert session.of_type(MetaData) == [
        MetaData({"audiocodecid": 10.0}),
        MetaData({"audiocodecid": 10.0, "videocodecid": 7.0}),
    ]
    assert session.of_type(Unpublished) == [Unpublished(1)]
    assert session.of_type(VideoData)[1].payload == KEYFRAME


def test_nginx_relay_media_before_publish_start_is_kept() -> None:
    session = Session()
    nginx_relay(session)
    request = session.events[-1]
    assert isinstance(request, PublishRequested)
    assert request.publish_type == "live"
    session.server.accept_publish(request.stream_id)
    session.drain()
    assert [(type(e).__name__, e.timestamp_ms) for e in session.events[2:]] == [
        ("AudioData", 46),
        ("AudioData", 69),
        ("VideoData", 2002),
        ("VideoData", 2002),
    ]
    assert session.view.statuses()[-1][1]["code"] == "NetStream.Publish.Start"


def test_nginx_relay_media_is_dropped_when_rejected() -> None:
    session = Session()
    nginx_relay(session)
    session.server.reject_publish(1, "NetStream.Publish.Rejected", "channel disabled")
    session.drain()
    assert not session.of_type(AudioData) and not session.of_type(VideoData)
    assert session.view.statuses()[-1][1]["level"] == "error"
    assert session.server.state is ConnectionState.CLOSING


class ByteAtATime(Session):
    def feed(self, data: bytes) -> None:
        for byte in data:
            super().feed(bytes((byte,)))


@pytest.mark.parametrize("client", CLIENTS)
def test_one_byte_at_a_time_gives_the_same_events(client: str) -> None:
    whole, trickled = Session(auto_accept=True), ByteAtATime(auto_accept=True)
    CLIENTS[client](whole)
    CLIENTS[client](trickled)
    assert trickled.events == whole.events
    assert len(whole.events) > 3
    assert [(m.type_id, m.payload) for m in trickled.view.messages] == [
        (m.type_id, m.payload) for m in whole.view.messages
    ]


def _timestamps_through_pair(timestamps: list[int], chunk_size: int) -> list[int]:
    server = ServerConnection()
    client = ClientConnection("live", "chan", "rtmp://h/live", chunk_size=chunk_size)
    client.initiate()
    received: list[int] = []

    def pump() -> None:
        for _ in range(10):
            server.receive_data(client.data_to_send())
            client.receive_data(server.data_to_send())
            while (event := server.next_event()) is not None:
                if isinstance(event, PublishRequested):
                    server.accept_publish(event.stream_id)
                elif isinstance(event, VideoData):
                    received.append(event.timestamp_ms)

    pump()
    for ts in timestamps:
        client.send_video(ts, b"\x27\x01" + bytes(300))  # 3 chunks at 128 bytes
    pump()
    return received


@pytest.mark.parametrize("chunk_size", [128, 4096])
def test_timestamps_crossing_the_extended_marker_and_2_pow_32(chunk_size: int) -> None:
    around_marker = [0xFFFFFF - 66 + 33 * i for i in range(6)]
    around_wrap = [(1 << 32) - 66 + 33 * i for i in range(6)]
    sent = [0, 33, *around_marker, *around_wrap]
    assert _timestamps_through_pair(sent, chunk_size) == [ts & 0xFFFFFFFF for ts in sent]
