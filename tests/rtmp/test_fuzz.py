"""Hypothesis: whatever the peer sends, ServerConnection raises only RtmpError subclasses."""

from __future__ import annotations

import contextlib

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from livechannel.rtmp.connection import ServerConnection
from livechannel.rtmp.errors import RtmpError
from livechannel.rtmp.events import PublishRequested
from livechannel.rtmp.limits import RtmpLimits
from tests.support.rtmp_clients import CLIENTS
from tests.support.rtmp_peer import ScriptedPeer, Session

SMALL_LIMITS = RtmpLimits(
    max_message_bytes=64 * 1024, max_chunk_streams=16, max_partial_bytes=128 * 1024, max_amf_depth=8
)


class Recorder(Session):
    """Records what a scripted client sends, to replay it mutated."""

    def __init__(self) -> None:
        super().__init__(auto_accept=True)
        self.sent = bytearray()

    def feed(self, data: bytes) -> None:
        self.sent += data
        super().feed(data)


def _recorded(client: str) -> bytes:
    recorder = Recorder()
    CLIENTS[client](recorder)
    return bytes(recorder.sent)


RECORDINGS = {name: _recorded(name) for name in CLIENTS}
_HANDSHAKE = ScriptedPeer().c0c1() + ScriptedPeer().c2()


def _drive(data: bytes, cuts: list[int], decide_accept: bool) -> None:
    """Feed `data` split at `cuts`, answering publish requests like the edge would."""
    server = ServerConnection(limits=SMALL_LIMITS)
    with contextlib.suppress(RtmpError):
        for start, end in zip([0, *cuts], [*cuts, len(data)], strict=True):
            server.receive_data(data[start:end])
            while (event := server.next_event()) is not None:
                if isinstance(event, PublishRequested):
                    if decide_accept:
                        server.accept_publish(event.stream_id)
                    else:
                        server.reject_publish(event.stream_id, "NetStream.Publish.Rejected", "no")
            server.data_to_send()


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=600), st.booleans())
def test_arbitrary_bytes_from_the_start(data: bytes, accept: bool) -> None:
    _drive(b"\x03" + data, [], accept)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=600), st.lists(st.integers(0, 600), max_size=5), st.booleans())
def test_arbitrary_bytes_after_a_valid_handshake(
    data: bytes, cuts: list[int], accept: bool
) -> None:
    payload = _HANDSHAKE + data
    _drive(payload, sorted(c + len(_HANDSHAKE) for c in cuts if c <= len(data)), accept)


@st.composite
def mutated_recordings(draw: st.DrawFn) -> bytes:
    data = bytearray(RECORDINGS[draw(st.sampled_from(sorted(RECORDINGS)))])
    start = len(_HANDSHAKE)  # mutate the chunk stream, not the (unvalidated) handshake
    for _ in range(draw(st.integers(1, 8))):
        position = draw(st.integers(start, len(data) - 1))
        action = draw(st.sampled_from(["flip", "insert", "delete", "truncate"]))
        if action == "flip":
            data[position] = draw(st.integers(0, 255))
        elif action == "insert":
            data[position:position] = draw(st.binary(min_size=1, max_size=8))
        elif action == "delete":
            del data[position : position + draw(st.integers(1, 8))]
        else:
            del data[position:]
        if len(data) <= start + 1:
            break
    return bytes(data)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_recordings(), st.lists(st.integers(0, 30_000), max_size=4), st.booleans())
def test_mutated_real_client_streams(data: bytes, cuts: list[int], accept: bool) -> None:
    _drive(data, sorted(c for c in cuts if c <= len(data)), accept)
