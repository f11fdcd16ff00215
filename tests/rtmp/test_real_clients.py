"""Real publishers' wire behaviour (docs/rtmp-clients.md), scripted byte for byte."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from livechannel.rtmp import handshake
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
from livechannel.rtmp.messages import MessageType, u32_body
from tests.rtmp.peer import FIXED_RANDOM, ScriptedPeer, Session

AUDIO, VIDEO = MessageType.AUDIO, MessageType.VIDEO
AVC_SEQUENCE_HEADER = bytes.fromhex("17 00 000000 0164001fffe1001967")
AVC_END_OF_SEQUENCE = bytes.fromhex("17 02 000000")
AAC_SEQUENCE_HEADER = bytes.fromhex("af 00 1210")
KEYFRAME = b"\x17\x01\x00\x00\x00" + bytes(range(256)) * 40  # 10 kB: many 128-byte chunks
INTERFRAME = b"\x27\x01\x00\x00\x00" + bytes(700)
AAC_FRAME = b"\xaf\x01" + bytes(200)

Script = Callable[[Session], None]


def ffmpeg(session: Session) -> None:
    """libavformat: digest C1, C2 = S1 echo, adopts our chunk size, burst of three calls,
    publish on chunk stream 8 with %XX escapes left in the name, end-of-sequence, FCUnpublish
    then deleteStream(1)."""
    peer = ScriptedPeer(style="digest")
    session.feed(peer.c0c1())
    session.feed(peer.c2(session.view.s1))
    session.feed(peer.connect(flashVer="FMLE/3.0 (compatible; Lavf59.27.100)"))
    session.feed(peer.set_chunk_size(65536))  # echoes the server's chunk size
    session.feed(
        peer.command("releaseStream", 2.0, None, "chan?sig=a%2Bb")
        + peer.command("FCPublish", 3.0, None, "chan?sig=a%2Bb")
        + peer.command("createStream", 4.0, None)
    )
    session.feed(peer.command("publish", 5.0, None, "chan?sig=a%2Bb", "live", csid=8, stream_id=1))
    session.feed(peer.data("@setDataFrame", "onMetaData", {"duration": 0, "width": 640}))
    session.feed(peer.media(VIDEO, 0, AVC_SEQUENCE_HEADER, csid=6))
    session.feed(peer.media(AUDIO, 0, AAC_SEQUENCE_HEADER, csid=4))
    session.feed(peer.media(VIDEO, 0, KEYFRAME, csid=6) + peer.media(AUDIO, 23, AAC_FRAME, csid=4))
    session.feed(peer.media(VIDEO, 33, INTERFRAME, csid=6))
    session.feed(peer.media(VIDEO, 66, AVC_END_OF_SEQUENCE, csid=6))
    session.feed(peer.command("FCUnpublish", 6.0, None, "chan?sig=a%2Bb"))
    session.feed(peer.command("deleteStream", 7.0, None, 1.0))


def librtmp(session: Session) -> None:
    """GStreamer rtmpsink: exact-echo C2, no chunk size ever (128-byte chunks), connect
    without flashVer, everything on chunk stream 4, percent-decoded (non-UTF-8) name,
    repeated @setDataFrame."""
    peer = ScriptedPeer()
    session.feed(peer.c0c1())
    session.feed(peer.c2(session.view.s1))
    props = {"app": "live", "tcUrl": "rtmp://127.0.0.1:1935/live"}
    session.feed(peer.command("connect", 1.0, props, csid=4))
    session.feed(peer.command("releaseStream", 2.0, None, "caf\udce9?sig=1", csid=4))
    session.feed(peer.command("FCPublish", 3.0, None, "caf\udce9?sig=1", csid=4))
    session.feed(peer.command("createStream", 4.0, None, csid=4))
    session.feed(peer.command("publish", 5.0, None, "caf\udce9?sig=1", "live", csid=4, stream_id=1))
    for _ in range(2):
        session.feed(peer.data("@setDataFrame", "onMetaData", {"width": 640}, csid=4))
    session.feed(peer.media(VIDEO, 0, AVC_SEQUENCE_HEADER, csid=4))
    session.feed(peer.media(AUDIO, 0, AAC_SEQUENCE_HEADER, csid=4))
    session.feed(peer.media(VIDEO, 0, KEYFRAME, csid=4) + peer.media(AUDIO, 23, AAC_FRAME, csid=4))
    session.feed(
        peer.media(VIDEO, 33, INTERFRAME, csid=4) + peer.media(AUDIO, 46, AAC_FRAME, csid=4)
    )
    session.feed(peer.command("deleteStream", 6.0, None, 1.0, csid=4))


def obs(session: Session) -> None:
    """OBS 29: chunk size 4096 before connect, supportsGoAway, swfUrl = tcUrl, everything on
    chunk stream 4, one @setDataFrame, no end-of-sequence, FCUnpublish then close."""
    peer = ScriptedPeer()
    session.feed(peer.c0c1())
    session.feed(peer.c2(session.view.s1) + peer.set_chunk_size(4096))
    url = "rtmp://127.0.0.1/live"
    props = {
        "app": "live",
        "type": "nonprivate",
        "flashVer": "FMLE/3.0 (compatible; FMSc/1.0)",
        "swfUrl": url,
        "tcUrl": url,
        "supportsGoAway": True,
    }
    session.feed(peer.command("connect", 1.0, props, csid=4))
    session.feed(peer.command("releaseStream", 2.0, None, "chan?sig=1", csid=4))
    session.feed(peer.command("FCPublish", 3.0, None, "chan?sig=1", csid=4))
    session.feed(peer.command("createStream", 4.0, None, csid=4))
    session.feed(peer.command("publish", 5.0, None, "chan?sig=1", "live", csid=4, stream_id=1))
    session.feed(peer.data("@setDataFrame", "onMetaData", {"width": 640}, csid=4))
    session.feed(peer.media(VIDEO, 0, AVC_SEQUENCE_HEADER, csid=4))
    session.feed(peer.media(AUDIO, 0, AAC_SEQUENCE_HEADER, csid=4))
    session.feed(peer.media(VIDEO, 0, KEYFRAME, csid=4) + peer.media(AUDIO, 23, AAC_FRAME, csid=4))
    session.feed(peer.media(VIDEO, 33, INTERFRAME, csid=4))
    session.feed(peer.command("FCUnpublish", 6.0, None, "chan?sig=1", csid=4))


def gstreamer_rtmp2(session: Session) -> None:
    """GStreamer rtmp2sink: C2 not byte-exact, echoes our window size, transaction id 0 for
    releaseStream/FCPublish/publish, chunk size 128 sent after publish, frequent
    @setDataFrame (the first with audio fields only), deleteStream with the stream name."""
    peer = ScriptedPeer()
    session.feed(peer.c0c1())
    s1 = session.view.s1
    session.feed(peer.c2(s1[:4] + b"\x00\x00\x00\x01" + s1[8:]))
    session.feed(peer.connect(flashVer="LNX 10,0,32,18"))
    session.feed(peer.control(MessageType.WINDOW_ACK_SIZE, u32_body(2_500_000)))
    session.feed(peer.command("releaseStream", 0.0, None, "chan?sig=1"))
    session.feed(peer.command("FCPublish", 0.0, None, "chan?sig=1"))
    session.feed(peer.command("createStream", 2.0, None))
    session.feed(peer.command("publish", 0.0, None, "chan?sig=1", "live", stream_id=1))
    session.feed(peer.set_chunk_size(128))
    session.feed(peer.data("@setDataFrame", "onMetaData", {"audiocodecid": 10}))
    session.feed(peer.media(AUDIO, 0, AAC_SEQUENCE_HEADER, csid=4))
    session.feed(peer.media(VIDEO, 0, AVC_SEQUENCE_HEADER, csid=6))
    session.feed(peer.media(VIDEO, 0, KEYFRAME, csid=6) + peer.media(AUDIO, 23, AAC_FRAME, csid=4))
    session.feed(peer.data("@setDataFrame", "onMetaData", {"audiocodecid": 10, "videocodecid": 7}))
    session.feed(peer.media(VIDEO, 33, INTERFRAME, csid=6))
    session.feed(peer.command("FCUnpublish", 0.0, None, "chan?sig=1"))
    session.feed(peer.command("deleteStream", 0.0, None, "chan?sig=1"))


def nginx_relay(session: Session) -> None:
    """nginx-rtmp push relay: digest C1 (12.0.13.14) and a real-digest C2, chunk size and
    window before connect, no releaseStream/FCPublish, publish with transaction 0, media
    without waiting for Publish.Start (first audio at 46 ms, keyframe at ~2 s), no
    @setDataFrame, no FCUnpublish: it just closes."""
    peer = ScriptedPeer()
    random = FIXED_RANDOM[: handshake.HANDSHAKE_RANDOM_SIZE]
    session.feed(b"\x03" + bytes(4) + bytes((12, 0, 13, 14)) + random)
    c2 = bytes(reversed(session.view.s1))  # stands for the digest response: never checked
    session.feed(
        c2
        + peer.set_chunk_size(4096)
        + peer.control(MessageType.WINDOW_ACK_SIZE, u32_body(5_000_000))
        + peer.connect(flashVer="LNX.11,1,102,55")
        + peer.command("createStream", 2.0, None)
    )
    session.feed(
        peer.command("publish", 0.0, None, "chan?sig=1", "live", csid=8, stream_id=1)
        + peer.media(AUDIO, 46, AAC_SEQUENCE_HEADER, csid=4)
        + peer.media(AUDIO, 69, AAC_FRAME, csid=4)
        + peer.media(VIDEO, 2002, AVC_SEQUENCE_HEADER, csid=6)
        + peer.media(VIDEO, 2002, KEYFRAME, csid=6)
    )


CLIENTS: dict[str, Script] = {
    "ffmpeg": ffmpeg,
    "librtmp": librtmp,
    "obs": obs,
    "gstreamer_rtmp2": gstreamer_rtmp2,
    "nginx_relay": nginx_relay,
}


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
