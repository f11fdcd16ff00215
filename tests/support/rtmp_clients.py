"""Real publishers' opening and closing bytes, scripted message by message (docs/rtmp-clients.md):
ffmpeg/libavformat, librtmp (GStreamer rtmpsink), OBS, GStreamer rtmp2sink, the nginx-rtmp
relay. Each script drives a `Session` exactly as that client puts it on the wire."""

from __future__ import annotations

from collections.abc import Callable

from livechannel.rtmp import handshake
from livechannel.rtmp.messages import MessageType, u32_body
from tests.support.rtmp_peer import FIXED_RANDOM, ScriptedPeer, Session

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
