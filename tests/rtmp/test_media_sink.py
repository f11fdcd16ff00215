"""ServerConnection.set_media_sink: the same media, in the same order, with no events.

The ingest edge installs a sink once a publish is accepted. Whatever the sink receives,
plus the events that remain, must be exactly what the event stream alone would have said,
in the same order, for any way the input is split into reads and any point at which the
sink is removed (backpressure) and installed again.
"""

from __future__ import annotations

import itertools
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from livechannel.rtmp.connection import ServerConnection
from livechannel.rtmp.events import AudioData, Unpublished, VideoData
from livechannel.rtmp.messages import MessageType
from tests.support.rtmp_peer import Pair

MEDIA = [
    ("video", 0, b"\x17\x00" + bytes(30)),
    ("audio", 0, b"\xaf\x00\x12\x10"),
    ("meta", 0, b""),
    ("video", 33, b"\x27\x01" + bytes(70_000)),  # several chunks, interleaved with audio
    ("audio", 23, b"\xaf\x01" + bytes(300)),
    ("audio", 46, b"\xaf\x01" + bytes(301)),
    ("video", 66, b"\x27\x01" + bytes(5)),
]


def published_pair() -> Pair:
    pair = Pair(chunk_size=4096)
    pair.publishing()
    pair.server_events.clear()
    return pair


def client_bytes(pair: Pair) -> bytes:
    for kind, ts, payload in MEDIA:
        if kind == "video":
            pair.client.send_video(ts, payload)
        elif kind == "audio":
            pair.client.send_audio(ts, payload)
        else:
            pair.client.send_metadata({"width": 1280}, ts)
    pair.client.unpublish()
    return pair.client.data_to_send()


def as_records(events: list[Any]) -> list[tuple[str, int, bytes]]:
    out = []
    for e in events:
        if isinstance(e, VideoData | AudioData):
            kind = MessageType.VIDEO if isinstance(e, VideoData) else MessageType.AUDIO
            out.append((str(int(kind)), e.timestamp_ms, bytes(e.payload)))
        else:
            out.append((type(e).__name__, 0, b""))
    return out


def drive(server: ServerConnection, data: bytes, cuts: list[int], toggles: set[int]) -> list:  # type: ignore[type-arg]
    """Feed `data` split at `cuts`; remove the sink before read i when i is in toggles (and
    put it back after draining, as the edge does after backpressure)."""
    seen: list[tuple[str, int, bytes]] = []

    def sink(type_id: int, timestamp_ms: int, payload: bytes) -> None:
        seen.append((str(type_id), timestamp_ms, bytes(payload)))

    server.set_media_sink(sink)
    bounds = [0, *sorted(set(cuts)), len(data)]
    for i, (a, b) in enumerate(itertools.pairwise(bounds)):
        if i in toggles:
            server.set_media_sink(None)
        server.receive_data(data[a:b])
        events = []
        while (event := server.next_event()) is not None:
            events.append(event)
        seen.extend(as_records(events))
        server.set_media_sink(sink)
    return seen


def test_sink_gets_media_and_events_keep_their_place() -> None:
    pair = published_pair()
    seen = drive(pair.server, client_bytes(pair), [], set())
    assert seen == [
        ("9", 0, MEDIA[0][2]),
        ("8", 0, MEDIA[1][2]),
        ("MetaData", 0, b""),  # queued as an event; media after it wait behind it
        ("9", 33, MEDIA[3][2]),
        ("8", 23, MEDIA[4][2]),
        ("8", 46, MEDIA[5][2]),
        ("9", 66, MEDIA[6][2]),
        ("Unpublished", 0, b""),
    ]


def test_no_media_events_while_the_sink_takes_them() -> None:
    pair = published_pair()
    got: list[int] = []
    pair.server.set_media_sink(lambda t, ts, p: got.append(ts))
    pair.client.send_video(0, b"\x17\x01" + bytes(10))
    pair.client.send_audio(5, b"\xaf\x01" + bytes(10))
    pair.server.receive_data(pair.client.data_to_send())
    assert got == [0, 5]
    assert pair.server.next_event() is None


def test_no_sink_before_the_publish_is_accepted() -> None:
    pair = Pair(chunk_size=4096)
    request = pair.publish_request()
    calls: list[int] = []
    pair.server.set_media_sink(lambda t, ts, p: calls.append(ts))
    pair.client.send_video(0, b"\x17\x00" + bytes(10))  # sent before Publish.Start
    pair.pump()
    assert calls == []  # held for the decision, delivered as an event after accepting
    pair.server.accept_publish(request.stream_id)
    assert isinstance(pair.server.next_event(), VideoData)


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_any_reads_and_toggles_give_the_event_stream(data: st.DataObject) -> None:
    reference = published_pair()
    stream = client_bytes(reference)
    reference.server.receive_data(stream)
    expected = []
    while (event := reference.server.next_event()) is not None:
        expected.append(event)
    assert isinstance(expected[-1], Unpublished)

    pair = published_pair()
    assert client_bytes(pair) == stream  # same client state, same bytes
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=12))
    toggles = data.draw(st.sets(st.integers(0, 13), max_size=5))
    assert drive(pair.server, stream, cuts, toggles) == as_records(expected)
