"""Handshake: simple answer to every C1, C2 never validated, C0 version checked at once."""

from __future__ import annotations

import pytest

from livechannel.rtmp import handshake
from livechannel.rtmp.connection import ConnectionState, ServerConnection
from livechannel.rtmp.errors import ProtocolError
from tests.support.rtmp_peer import FIXED_RANDOM, ScriptedPeer, Session

C1_SIZE = handshake.HANDSHAKE_SIZE


@pytest.mark.parametrize("first_byte", [b"G", b"\x06", b"\x00"])  # HTTP "GET", RTMPE, garbage
def test_c0_other_than_version_3_is_refused_on_the_first_byte(first_byte: bytes) -> None:
    with pytest.raises(ProtocolError):
        ServerConnection().receive_data(first_byte)


@pytest.mark.parametrize("style", ["simple", "digest"])
def test_s0_s1_s2_come_at_once_after_c1_and_s2_echoes_c1(style: str) -> None:
    server = ServerConnection()
    c0c1 = ScriptedPeer(style=style).c0c1()
    server.receive_data(c0c1[:-1])
    assert server.data_to_send() == b""
    server.receive_data(c0c1[-1:])
    reply = server.data_to_send()
    assert len(reply) == 1 + 2 * C1_SIZE
    assert reply[0] == 3
    s1 = reply[1 : 1 + C1_SIZE]
    assert s1[4:8] == bytes(4)  # zero version: libavformat then skips digest validation
    assert reply[1 + C1_SIZE :] == c0c1[1:]
    assert server.state is ConnectionState.AWAIT_C2


def test_s1_random_part_is_not_constant() -> None:
    replies = set()
    for _ in range(2):
        server = ServerConnection()
        server.receive_data(ScriptedPeer().c0c1())
        replies.add(server.data_to_send()[9 : 1 + C1_SIZE])
    assert len(replies) == 2


def test_digest_style_c1_carries_a_valid_digest_and_simple_does_not() -> None:
    random = FIXED_RANDOM[: handshake.HANDSHAKE_RANDOM_SIZE]
    digest_c1 = handshake.client_c0_c1(style="digest", time_ms=0, random=random)[1:]
    simple_c1 = handshake.client_c0_c1(style="simple", time_ms=0, random=random)[1:]
    assert digest_c1[4:8] == handshake.DIGEST_CLIENT_VERSION
    assert handshake.has_client_digest(digest_c1)
    assert not handshake.has_client_digest(simple_c1)


@pytest.mark.parametrize("c2_kind", ["exact echo", "echo with bytes 4-7 rewritten", "garbage"])
def test_any_c2_is_accepted(c2_kind: str) -> None:
    session = Session()
    peer = ScriptedPeer(style="digest")
    session.feed(peer.c0c1())
    s1 = session.view.s1
    c2 = {
        "exact echo": s1,
        "echo with bytes 4-7 rewritten": s1[:4] + b"\x01\x02\x03\x04" + s1[8:],
        "garbage": bytes(C1_SIZE),
    }[c2_kind]
    session.feed(c2 + peer.connect())
    assert session.server.state is ConnectionState.CONNECTED


def test_handshake_fed_one_byte_at_a_time() -> None:
    session = Session()
    peer = ScriptedPeer()
    data = peer.c0c1() + peer.c2() + peer.connect()
    for byte in data:
        session.feed(bytes((byte,)))
    assert session.server.state is ConnectionState.CONNECTED
    assert session.server.bytes_received == len(data)
