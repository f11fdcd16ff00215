"""ServerConnection driven by the sans-IO ClientConnection (in memory) and by scripted bytes."""

from __future__ import annotations

from typing import Any

import pytest

from livechannel.rtmp import amf0
from livechannel.rtmp.client import (
    ClientState,
    Connected,
    ErrorReceived,
    StatusReceived,
)
from livechannel.rtmp.connection import (
    PLAY_REFUSED_DESCRIPTION,
    SERVER_CHUNK_SIZE,
    ConnectionState,
    ServerConnection,
)
from livechannel.rtmp.errors import LocalProtocolError, MessageTooLarge, ProtocolError
from livechannel.rtmp.events import (
    AudioData,
    ConnectRequested,
    MetaData,
    PlayRefused,
    PublishRequested,
    Unpublished,
    VideoData,
)
from livechannel.rtmp.limits import RtmpLimits
from livechannel.rtmp.messages import MessageType, UserControlEvent, u32_body, user_control_body
from tests.support.rtmp_peer import Pair, ScriptedPeer, Session

AVC_HEADER = bytes.fromhex("17 00 000000 01640028ffe1")  # shape of an FLV AVC sequence header
AAC_HEADER = bytes.fromhex("af 00 1210")


def test_connect_create_publish_accept_media_unpublish() -> None:
    pair = Pair()
    request = pair.publish_request()
    connect = pair.server_events[0]
    assert isinstance(connect, ConnectRequested)
    assert (connect.app, connect.tc_url) == ("live", "rtmp://127.0.0.1/live")
    assert connect.flash_ver.startswith("FMLE/3.0")
    assert connect.properties["type"] == "nonprivate"
    assert request == PublishRequested(1, "live", "chan?sig=x", "live")
    assert pair.server.state is ConnectionState.PUBLISH_PENDING
    connected = next(e for e in pair.client_events if isinstance(e, Connected))
    assert connected.info["code"] == "NetConnection.Connect.Success"
    assert connected.info["objectEncoding"] == 0
    assert connected.properties["fmsVer"].startswith("FMS/")

    pair.server.accept_publish(request.stream_id)
    pair.pump()
    assert pair.server.state is ConnectionState.PUBLISHING
    assert pair.client.state is ClientState.PUBLISHING
    start = [e for e in pair.client_events if isinstance(e, StatusReceived)][-1]
    assert (start.stream_id, start.level, start.code) == (1, "status", "NetStream.Publish.Start")

    pair.client.send_metadata({"width": 1280, "height": 720, "videocodecid": 7})
    pair.client.send_video(0, AVC_HEADER)
    pair.client.send_audio(0, AAC_HEADER)
    pair.client.send_video(33, b"\x27\x01" + bytes(20000))
    pair.client.unpublish()
    pair.pump()
    stream_events = pair.server_events[2:]
    assert stream_events == [
        MetaData({"width": 1280.0, "height": 720.0, "videocodecid": 7.0}),
        VideoData(1, 0, AVC_HEADER),
        AudioData(1, 0, AAC_HEADER),
        VideoData(1, 33, b"\x27\x01" + bytes(20000)),
        Unpublished(1),
    ]
    assert pair.server.state is ConnectionState.UNPUBLISHED


def test_connect_reply_sequence() -> None:
    session = Session()
    peer = ScriptedPeer()
    session.handshake(peer)
    session.feed(peer.connect())
    kinds = [(m.type_id, m.payload) for m in session.view.messages]
    assert kinds[:3] == [
        (MessageType.WINDOW_ACK_SIZE, u32_body(2_500_000)),
        (MessageType.SET_PEER_BANDWIDTH, u32_body(2_500_000) + b"\x02"),
        (MessageType.SET_CHUNK_SIZE, u32_body(SERVER_CHUNK_SIZE)),
    ]
    ((_, result),) = session.view.commands()
    assert (result.name, result.transaction_id) == ("_result", 1.0)
    assert result.args[0]["code"] == "NetConnection.Connect.Success"


def test_reject_sends_error_status_then_ignores_input() -> None:
    pair = Pair()
    request = pair.publish_request()
    pair.server.reject_publish(request.stream_id, "NetStream.Publish.BadName", "no such channel")
    assert pair.server.closing
    pair.pump()
    status = [e for e in pair.client_events if isinstance(e, StatusReceived)][-1]
    assert (status.level, status.code, status.description) == (
        "error",
        "NetStream.Publish.BadName",
        "no such channel",
    )
    received = pair.server.bytes_received
    pair.client.send_video(0, AVC_HEADER)
    pair.pump()
    assert pair.server.bytes_received == received
    assert not [e for e in pair.server_events if isinstance(e, VideoData)]
    pair.server.accept_publish(request.stream_id)  # a late decision is harmless
    assert pair.server.closing


def test_media_between_publish_and_accept_is_held_in_order() -> None:
    pair = Pair()
    request = pair.publish_request()
    pair.client.send_audio(46, AAC_HEADER)  # the nginx-rtmp relay does not wait
    pair.client.send_metadata({"a": 1})
    pair.client.send_video(2000, AVC_HEADER)
    pair.pump()
    assert pair.server_events[-1] == request
    pair.server.accept_publish(request.stream_id)
    pair.pump()
    assert pair.server_events[-3:] == [
        AudioData(1, 46, AAC_HEADER),
        MetaData({"a": 1.0}),
        VideoData(1, 2000, AVC_HEADER),
    ]


def test_unpublish_before_the_decision_follows_the_held_media() -> None:
    pair = Pair()
    request = pair.publish_request()
    pair.client.send_video(0, AVC_HEADER)
    pair.client.unpublish()
    pair.pump()
    pair.server.accept_publish(request.stream_id)
    pair.pump()
    assert pair.server_events[-2:] == [VideoData(1, 0, AVC_HEADER), Unpublished(1)]
    assert pair.server.state is ConnectionState.UNPUBLISHED


def test_held_media_is_bounded() -> None:
    pair = Pair(ServerConnection(limits=RtmpLimits(max_held_media_bytes=1000)))
    pair.publish_request()
    pair.client.send_video(0, bytes(600))
    pair.client.send_video(33, bytes(600))
    with pytest.raises(MessageTooLarge):
        pair.pump()


def test_media_before_publish_is_dropped() -> None:
    session = Session()
    peer = ScriptedPeer()
    session.handshake(peer)
    session.feed(peer.connect() + peer.media(MessageType.VIDEO, 0, AVC_HEADER, csid=6))
    session.feed(peer.data("@setDataFrame", "onMetaData", {"w": 1}))
    assert [type(e) for e in session.events] == [ConnectRequested]


def test_play_is_refused_with_the_hls_hint() -> None:
    session = Session()
    peer = ScriptedPeer()
    session.handshake(peer)
    session.feed(peer.connect() + peer.command("createStream", 2.0, None))
    session.feed(peer.command("play", 0.0, None, "chan", csid=8, stream_id=1))
    assert session.of_type(PlayRefused) == [PlayRefused(1, "chan")]
    assert session.view.statuses()[-1] == (
        1,
        {
            "level": "error",
            "code": "NetStream.Play.Failed",
            "description": PLAY_REFUSED_DESCRIPTION,
        },
    )
    assert session.server.closing


def test_second_publish_on_one_connection_is_rejected() -> None:
    pair = Pair()
    pair.publishing()
    assert pair.client.stream_id is not None
    pair.client.send_command("publish", None, "other", "live", stream_id=1)
    pair.pump()
    assert pair.server.closing
    assert len([e for e in pair.server_events if isinstance(e, PublishRequested)]) == 1
    assert pair.client_events[-1].code == "NetStream.Publish.BadName"


def _replies(session: Session) -> list[tuple[str, float]]:
    return [(c.name, c.transaction_id) for _, c in session.view.commands()]


def test_fc_calls_answer_only_nonzero_transactions() -> None:
    session = Session()
    peer = ScriptedPeer()
    session.handshake(peer)
    session.feed(peer.connect())
    session.feed(
        peer.command("releaseStream", 0.0, None, "a") + peer.command("FCPublish", 0.0, None, "a")
    )
    assert _replies(session) == [("_result", 1.0)]
    session.feed(
        peer.command("releaseStream", 2.0, None, "a") + peer.command("FCPublish", 3.0, None, "a")
    )
    assert _replies(session)[1:] == [("_result", 2.0), ("_result", 3.0)]


def test_create_stream_numbers_streams_from_one() -> None:
    session = Session()
    peer = ScriptedPeer()
    session.handshake(peer)
    session.feed(
        peer.connect()
        + peer.command("createStream", 2.0, None)
        + peer.command("createStream", 3.0, None)
    )
    results = [c for _, c in session.view.commands()][1:]
    assert [(c.transaction_id, c.args[0]) for c in results] == [(2.0, 1.0), (3.0, 2.0)]


def test_unknown_command_gets_error_only_with_a_transaction() -> None:
    session = Session()
    peer = ScriptedPeer()
    session.handshake(peer)
    session.feed(peer.connect() + peer.command("getStreamLength", 0.0, None, "a"))
    assert _replies(session) == [("_result", 1.0)]
    session.feed(peer.command("_checkbw", 5.0, None))
    assert _replies(session)[-1] == ("_error", 5.0)
    session.feed(peer.command("_result", 6.0, None))  # a peer's reply is never answered
    assert _replies(session)[-1] == ("_error", 5.0)


def test_client_sees_error_replies() -> None:
    pair = Pair()
    pair.pump()
    txn = pair.client.send_command("_checkbw", None)
    pair.pump()
    assert pair.client_events[-1] == ErrorReceived(txn, pair.client_events[-1].info)
    assert pair.client_events[-1].info["code"] == "NetConnection.Call.Failed"


def _published_session() -> tuple[Session, ScriptedPeer]:
    session = Session(auto_accept=True)
    peer = ScriptedPeer()
    session.handshake(peer)
    session.feed(peer.connect() + peer.command("createStream", 2.0, None))
    session.feed(peer.command("publish", 3.0, None, "chan", "live", csid=8, stream_id=1))
    assert session.server.state is ConnectionState.PUBLISHING
    return session, peer


@pytest.mark.parametrize(
    "ending",
    [
        ("FCUnpublish", 0.0, None, "chan"),
        ("deleteStream", 4.0, None, 1.0),
        ("deleteStream", 0.0, None, "chan"),  # GStreamer names the stream
        ("closeStream", 0.0, None),
    ],
)
def test_each_ending_command_unpublishes_once(ending: tuple[Any, ...]) -> None:
    session, peer = _published_session()
    session.feed(peer.command(*ending, stream_id=1))
    session.feed(peer.command("deleteStream", 5.0, None, 1.0))
    session.feed(peer.media(MessageType.VIDEO, 0, AVC_HEADER, csid=6))
    assert session.of_type(Unpublished) == [Unpublished(1)]
    assert not session.of_type(VideoData)


def test_delete_of_another_stream_is_not_an_unpublish() -> None:
    session, peer = _published_session()
    session.feed(peer.command("deleteStream", 4.0, None, 7.0))
    assert session.of_type(Unpublished) == []


def test_command_before_connect_is_a_protocol_error() -> None:
    session = Session()
    peer = ScriptedPeer()
    session.handshake(peer)
    with pytest.raises(ProtocolError):
        session.feed(peer.command("createStream", 2.0, None))


def test_connect_twice_is_a_protocol_error() -> None:
    session = Session()
    peer = ScriptedPeer()
    session.handshake(peer)
    session.feed(peer.connect())
    with pytest.raises(ProtocolError):
        session.feed(peer.connect())


def test_amf3_command_and_data_messages() -> None:
    session = Session(auto_accept=True)
    peer = ScriptedPeer()
    session.handshake(peer)
    connect = b"\x00" + amf0.encode_values(
        "connect", 1.0, {"app": "live", "tcUrl": "rtmp://h/live"}
    )
    session.feed(peer.writer.encode(3, 0, MessageType.COMMAND_AMF3, 0, connect))
    assert session.of_type(ConnectRequested)[0].app == "live"
    session.feed(peer.command("publish", 0.0, None, "chan", stream_id=1))
    data = b"\x00" + amf0.encode_values("onMetaData", {"fps": 30})
    session.feed(peer.writer.encode(4, 0, MessageType.DATA_AMF3, 1, data))
    assert session.of_type(MetaData) == [MetaData({"fps": 30.0})]


def test_metadata_forms() -> None:
    session, peer = _published_session()
    session.feed(peer.data("@setDataFrame", "onMetaData", amf0.EcmaArray(w=1)))
    session.feed(peer.data("onMetaData", {"w": 2}))
    session.feed(peer.data("onCuePoint", {"w": 3}))  # not metadata
    session.feed(peer.data("onMetaData", "not a dict"))
    session.feed(
        peer.writer.encode(4, 0, MessageType.DATA_AMF0, 1, b"\x02\x00\x0aonMeta")
    )  # broken
    metadata = session.of_type(MetaData)
    assert metadata == [MetaData({"w": 1.0}), MetaData({"w": 2.0})]
    assert type(metadata[0].values) is dict


def test_window_acknowledgement_and_ping() -> None:
    session, peer = _published_session()
    session.feed(peer.control(MessageType.WINDOW_ACK_SIZE, u32_body(1000)))
    session.feed(peer.media(MessageType.VIDEO, 0, bytes(1500), csid=6))
    acks = [m for m in session.view.messages if m.type_id == MessageType.ACKNOWLEDGEMENT]
    assert acks == [acks[0]]
    assert int.from_bytes(acks[0].payload, "big") == session.server.bytes_received
    session.feed(
        peer.control(
            MessageType.USER_CONTROL, user_control_body(UserControlEvent.PING_REQUEST, 777)
        )
    )
    assert session.view.messages[-1].payload == user_control_body(
        UserControlEvent.PING_RESPONSE, 777
    )


@pytest.mark.parametrize("size", [0, 0x80000000, 0x1000000])
def test_bad_set_chunk_size_is_refused(size: int) -> None:
    session = Session()
    peer = ScriptedPeer()
    session.handshake(peer)
    with pytest.raises(ProtocolError):
        session.feed(peer.control(MessageType.SET_CHUNK_SIZE, u32_body(size)))


@pytest.mark.parametrize("body", [b"", b"\x00\x06\x00"])
def test_short_control_messages_are_protocol_errors(body: bytes) -> None:
    session = Session()
    peer = ScriptedPeer()
    session.handshake(peer)
    with pytest.raises(ProtocolError):
        session.feed(peer.control(MessageType.USER_CONTROL, body))


def test_undrained_events_are_a_local_error() -> None:
    server = ServerConnection(limits=RtmpLimits(max_queued_events=2))
    pair = Pair(server)
    pair.publishing()
    pair.client.send_audio(0, b"a")
    pair.client.send_audio(1, b"b")
    server.receive_data(pair.client.data_to_send())
    pair.client.send_audio(2, b"c")
    with pytest.raises(LocalProtocolError):
        server.receive_data(pair.client.data_to_send())


def test_api_misuse_is_a_local_error() -> None:
    with pytest.raises(LocalProtocolError):
        ServerConnection().send_status(1, "status", "x", "y")
    session = Session()
    peer = ScriptedPeer()
    session.handshake(peer)
    session.feed(peer.connect())
    with pytest.raises(LocalProtocolError):
        session.server.accept_publish(1)  # nothing was published
    with pytest.raises(LocalProtocolError):
        session.server.reject_publish(1, "NetStream.Publish.BadName", "x")


def test_accept_with_the_wrong_stream_id_is_a_local_error() -> None:
    pair = Pair()
    request = pair.publish_request()
    with pytest.raises(LocalProtocolError):
        pair.server.accept_publish(request.stream_id + 1)
    with pytest.raises(LocalProtocolError):
        pair.server.reject_publish(request.stream_id + 1, "NetStream.Publish.BadName", "x")


def test_aggregate_message_is_split_into_media() -> None:
    session, peer = _published_session()

    def tag(type_id: int, ts: int, body: bytes) -> bytes:
        header = (
            bytes((type_id,)) + len(body).to_bytes(3, "big") + (ts & 0xFFFFFF).to_bytes(3, "big")
        )
        return header + bytes((ts >> 24,)) + bytes(3) + body + (11 + len(body)).to_bytes(4, "big")

    aggregate = tag(9, 5000, b"\x17\x01v") + tag(8, 5010, b"\xaf\x01a")
    session.feed(peer.writer.encode(6, 100, MessageType.AGGREGATE, 1, aggregate))
    assert session.events[-2:] == [VideoData(1, 100, b"\x17\x01v"), AudioData(1, 110, b"\xaf\x01a")]
    with pytest.raises(ProtocolError):
        session.feed(peer.writer.encode(6, 200, MessageType.AGGREGATE, 1, aggregate[:-10]))
