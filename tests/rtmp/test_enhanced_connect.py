"""Enhanced RTMP, "Enhancing NetConnection connect Command": a client announcing fourCcList
(OBS 30+, ffmpeg 6.1+ with rtmp_enhanced_codecs) learns ours in the `_result`; a legacy
client's reply stays as it was."""

from __future__ import annotations

from livechannel.rtmp.connection import CAPS_EX_MOD_EX, FOURCC_CAN_DECODE
from tests.support.rtmp_peer import ScriptedPeer, Session


def connect_reply(**extra: object) -> dict[str, object]:
    session = Session()
    peer = ScriptedPeer()
    session.handshake(peer)
    session.feed(peer.connect(**extra))
    ((_, result),) = session.view.commands()
    assert result.name == "_result" and result.args[0]["code"] == "NetConnection.Connect.Success"
    assert isinstance(result.command_object, dict)
    return result.command_object


def test_fourcc_list_is_answered_with_what_we_take() -> None:
    reply = connect_reply(fourCcList=["av01", "vp09", "hvc1", "xyz1"])
    assert reply["fourCcList"] == ["hvc1", "av01", "vp09"]  # ours, in our order; xyz1 not
    video_map = reply["videoFourCcInfoMap"]
    assert isinstance(video_map, dict) and video_map["hvc1"] == FOURCC_CAN_DECODE
    assert set(video_map) == {"avc1", "hvc1", "av01", "vp09"}
    assert reply["audioFourCcInfoMap"] == {"mp4a": FOURCC_CAN_DECODE}
    assert reply["capsEx"] == CAPS_EX_MOD_EX


def test_wildcard_and_info_map_only_clients() -> None:
    assert connect_reply(fourCcList=["*"])["fourCcList"] == ["avc1", "hvc1", "av01", "vp09"]
    # v2 clients may send only the info maps: they get our full list.
    reply = connect_reply(videoFourCcInfoMap={"hvc1": 1.0}, capsEx=4.0)
    assert reply["fourCcList"] == ["avc1", "hvc1", "av01", "vp09"]


def test_legacy_connect_reply_is_unchanged() -> None:
    reply = connect_reply()
    assert set(reply) == {"fmsVer", "capabilities"}
