"""Chunk stream: one byte table drives ChunkWriter (encode) and ChunkReader (decode)."""

from __future__ import annotations

import contextlib
from typing import NamedTuple
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from livechannel.rtmp import chunk
from livechannel.rtmp.chunk import (
    TIMESTAMP_MASK,
    ChunkReader,
    ChunkWriter,
    RawMessage,
    basic_header,
)
from livechannel.rtmp.errors import LocalProtocolError, MessageTooLarge, ProtocolError, RtmpError
from livechannel.rtmp.limits import RtmpLimits


class Msg(NamedTuple):
    csid: int
    timestamp_ms: int  # as given to the writer; the reader yields it mod 2**32
    type_id: int
    stream_id: int
    payload: bytes
    fmt: int | None = None  # forced header type


class Case(NamedTuple):
    name: str
    chunk_size: int
    messages: list[Msg]
    wire: str


TABLE = [
    Case("type0 1-byte basic header", 128, [Msg(3, 0x102, 20, 0, b"ab")],
         "03 000102 000002 14 00000000 6162"),
    Case("2-byte basic header csid 64", 128, [Msg(64, 0, 8, 1, b"a")],
         "00 00 000000 000001 08 01000000 61"),
    Case("2-byte basic header csid 319", 128, [Msg(319, 0, 8, 1, b"a")],
         "00 ff 000000 000001 08 01000000 61"),
    Case("3-byte basic header csid 320", 128, [Msg(320, 0, 8, 1, b"a")],
         "01 00 01 000000 000001 08 01000000 61"),
    Case("3-byte basic header csid 65599", 128, [Msg(65599, 0, 8, 1, b"a")],
         "01 ff ff 000000 000001 08 01000000 61"),
    Case("message stream id is little-endian", 128, [Msg(3, 0, 20, 0x01020304, b"")],
         "03 000000 000000 14 04030201"),
    Case("header types 0,2,3,1 then 0 when going backwards", 128,
         [Msg(4, 1000, 8, 1, b"aa"), Msg(4, 1020, 8, 1, b"bb"), Msg(4, 1040, 8, 1, b"cc"),
          Msg(4, 1060, 8, 1, b"ddd"), Msg(4, 1000, 9, 1, b"e")],
         "04 0003e8 000002 08 01000000 6161  84 000014 6262  c4 6363"
         "44 000014 000003 08 646464  04 0003e8 000001 09 01000000 65"),
    Case("type 3 after type 0 at timestamp 0", 128,
         [Msg(3, 0, 20, 0, b"a"), Msg(3, 0, 20, 0, b"b")],
         "03 000000 000001 14 00000000 61 c3 62"),
    Case("forced type 3 after type 0 reuses the absolute field as delta (5.3.1.2.4)", 128,
         [Msg(7, 40, 8, 1, b"a"), Msg(7, 80, 8, 1, b"b", fmt=3)],
         "07 000028 000001 08 01000000 61 c7 62"),
    Case("continuation chunks", 4, [Msg(3, 0, 20, 0, b"0123456789")],
         "03 000000 00000a 14 00000000 30313233 c3 34353637 c3 3839"),
    Case("extended timestamp on type 0 and its type-3 continuations", 4,
         [Msg(3, 0x1000000, 20, 0, b"abcdef")],
         "03 ffffff 000006 14 00000000 01000000 61626364 c3 01000000 6566"),
    Case("0xFFFFFF itself is sent extended", 128, [Msg(3, 0xFFFFFF, 20, 0, b"a")],
         "03 ffffff 000001 14 00000000 00ffffff 61"),
    Case("0xFFFFFE still fits the field", 128, [Msg(3, 0xFFFFFE, 20, 0, b"a")],
         "03 fffffe 000001 14 00000000 61"),
    Case("extended delta on type 2, then a type-3 new message carrying it", 128,
         [Msg(5, 0, 8, 1, b"x"), Msg(5, 0x1000000, 8, 1, b"y"), Msg(5, 0x2000000, 8, 1, b"z")],
         "05 000000 000001 08 01000000 78  85 ffffff 01000000 79  c5 01000000 7a"),
    Case("extended delta on type 1 repeated on its continuation", 2,
         [Msg(5, 0, 8, 1, b"ab"), Msg(5, 0x1000000, 8, 1, b"cd"), Msg(5, 0x2000000, 8, 1, b"efg")],
         "05 000000 000002 08 01000000 6162  85 ffffff 01000000 6364"
         "45 ffffff 000003 08 01000000 6566 c5 01000000 67"),
    Case("timestamps wrap at 2**32", 128,
         [Msg(6, 0xFFFFFFF0, 9, 1, b"v"), Msg(6, (1 << 32) + 0x10, 9, 1, b"w")],
         "06 ffffff 000001 09 01000000 fffffff0 76  86 000020 77"),
    Case("a new stream id needs type 0", 128,
         [Msg(3, 0, 20, 0, b"a"), Msg(3, 0, 20, 1, b"b")],
         "03 000000 000001 14 00000000 61  03 000000 000001 14 01000000 62"),
]  # fmt: skip


def _expected(case: Case) -> list[RawMessage]:
    return [
        RawMessage(m.csid, m.timestamp_ms & TIMESTAMP_MASK, m.type_id, m.stream_id, m.payload)
        for m in case.messages
    ]


def _read_all(reader: ChunkReader) -> list[RawMessage]:
    out = []
    while (message := reader.next_message()) is not None:
        out.append(message)
    return out


@pytest.mark.parametrize("case", TABLE, ids=[c.name for c in TABLE])
def test_table_encodes(case: Case) -> None:
    writer = ChunkWriter(case.chunk_size)
    wire = b"".join(
        writer.encode(m.csid, m.timestamp_ms, m.type_id, m.stream_id, m.payload, fmt=m.fmt)
        for m in case.messages
    )
    assert wire.hex() == bytes.fromhex(case.wire).hex()


@pytest.mark.parametrize("case", TABLE, ids=[c.name for c in TABLE])
def test_table_decodes(case: Case) -> None:
    reader = ChunkReader()
    reader.set_chunk_size(case.chunk_size)
    reader.feed(bytes.fromhex(case.wire))
    assert _read_all(reader) == _expected(case)
    assert reader.buffered == 0


@pytest.mark.parametrize("case", TABLE, ids=[c.name for c in TABLE])
def test_table_decodes_one_byte_at_a_time(case: Case) -> None:
    reader = ChunkReader()
    reader.set_chunk_size(case.chunk_size)
    got = []
    for byte in bytes.fromhex(case.wire):
        reader.feed(bytes((byte,)))
        got += _read_all(reader)
    assert got == _expected(case)


@pytest.mark.parametrize(
    ("csid", "size"), [(2, 1), (63, 1), (64, 2), (319, 2), (320, 3), (65599, 3)]
)
def test_basic_header_uses_the_shortest_form(csid: int, size: int) -> None:
    assert len(basic_header(0, csid)) == size


def test_reader_accepts_the_long_form_for_small_csids() -> None:
    reader = ChunkReader()  # csid 70 in the 3-byte form: legal, just not shortest
    reader.feed(bytes.fromhex("01 06 00 000000 000001 08 01000000 61"))
    assert _read_all(reader) == [RawMessage(70, 0, 8, 1, b"a")]


@pytest.mark.parametrize("csid", [0, 1, 65600])
def test_writer_refuses_impossible_chunk_stream_ids(csid: int) -> None:
    with pytest.raises(LocalProtocolError):
        ChunkWriter().encode(csid, 0, 8, 1, b"")


def test_writer_refuses_undecodable_forced_headers() -> None:
    writer = ChunkWriter()
    with pytest.raises(LocalProtocolError):
        writer.encode(3, 0, 8, 1, b"a", fmt=1)  # nothing earlier on csid 3
    writer.encode(3, 10, 8, 1, b"a")
    with pytest.raises(LocalProtocolError):
        writer.encode(3, 20, 8, 1, b"ab", fmt=2)  # length changed
    with pytest.raises(LocalProtocolError):
        writer.encode(3, 25, 8, 1, b"a", fmt=3)  # delta 15 differs from the field (10)


def test_interleaved_chunk_streams_complete_in_arrival_order() -> None:
    writer = ChunkWriter(4)
    video = writer.encode(6, 0, 9, 1, b"VVVVVVVVVV")  # 3 chunks
    audio = writer.encode(4, 0, 8, 1, b"aa")  # 1 chunk
    first_video_chunk = 12 + 4
    wire = video[:first_video_chunk] + audio + video[first_video_chunk:]
    reader = ChunkReader()
    reader.set_chunk_size(4)
    reader.feed(wire)
    assert [m.payload for m in _read_all(reader)] == [b"aa", b"VVVVVVVVVV"]


def test_set_chunk_size_applies_to_the_next_chunk() -> None:
    writer = ChunkWriter(128)
    wire = writer.encode(3, 0, 20, 0, b"x" * 200)
    reader = ChunkReader()
    reader.feed(wire[:50])
    assert _read_all(reader) == []
    reader.feed(wire[50:])
    assert [len(m.payload) for m in _read_all(reader)] == [200]
    writer.chunk_size = 4096
    reader.set_chunk_size(4096)
    reader.feed(writer.encode(3, 0, 20, 0, b"y" * 3000))
    assert [len(m.payload) for m in _read_all(reader)] == [3000]


def test_abort_drops_the_partial_message() -> None:
    writer = ChunkWriter(4)
    partial = writer.encode(4, 0, 9, 1, b"0123456789")[: 12 + 4]
    reader = ChunkReader()
    reader.set_chunk_size(4)
    reader.feed(partial)
    assert _read_all(reader) == []
    reader.abort(4)
    reader.feed(bytes.fromhex("c4") + b"abcd")  # type 3 now opens a new 10-byte message
    reader.feed(bytes.fromhex("c4") + b"efgh" + bytes.fromhex("c4") + b"ij")
    assert [m.payload for m in _read_all(reader)] == [b"abcdefghij"]


def test_empty_message() -> None:
    reader = ChunkReader()
    reader.feed(bytes.fromhex("04 000010 000000 09 01000000"))
    assert _read_all(reader) == [RawMessage(4, 16, 9, 1, b"")]


def test_first_header_of_type_1_reads_against_zero_state() -> None:
    # librtmp sends some control messages (acks, pings) with a type 1 header first.
    reader = ChunkReader()
    reader.feed(bytes.fromhex("42 000005 000004 03 00001000"))
    assert _read_all(reader) == [RawMessage(2, 5, 3, 0, bytes.fromhex("00001000"))]


@pytest.mark.parametrize("wire", ["84 000014 61", "c4 61"])
def test_first_header_of_type_2_or_3_is_refused(wire: str) -> None:
    reader = ChunkReader()
    reader.feed(bytes.fromhex(wire))
    with pytest.raises(ProtocolError):
        reader.next_message()


def test_new_header_inside_an_unfinished_message_is_refused() -> None:
    reader = ChunkReader()
    reader.set_chunk_size(2)
    reader.feed(bytes.fromhex("04 000000 000004 08 01000000 6162  84 000001"))
    with pytest.raises(ProtocolError):
        reader.next_message()


def test_message_larger_than_the_limit_is_refused_at_its_header() -> None:
    reader = ChunkReader(RtmpLimits(max_message_bytes=1000))
    reader.feed(bytes.fromhex("04 000000 0003e9 09 01000000"))  # 1001 bytes announced
    with pytest.raises(MessageTooLarge):
        reader.next_message()
    ok = ChunkReader(RtmpLimits(max_message_bytes=1000))
    ok.set_chunk_size(1000)
    ok.feed(bytes.fromhex("04 000000 0003e8 09 01000000") + bytes(1000))
    assert len(_read_all(ok)[0].payload) == 1000


def test_partial_message_backlog_is_bounded() -> None:
    reader = ChunkReader(RtmpLimits(max_partial_bytes=10))
    reader.set_chunk_size(4)
    writer = ChunkWriter(4)
    wire = b"".join(writer.encode(csid, 0, 9, 1, b"x" * 8)[:16] for csid in (4, 5, 6))
    reader.feed(wire)
    with pytest.raises(MessageTooLarge):
        reader.next_message()


def test_number_of_chunk_streams_is_bounded() -> None:
    reader = ChunkReader(RtmpLimits(max_chunk_streams=3))
    writer = ChunkWriter()
    reader.feed(b"".join(writer.encode(csid, 0, 9, 1, b"x") for csid in (3, 4, 5, 6)))
    assert len([reader.next_message() for _ in range(3)]) == 3
    with pytest.raises(ProtocolError):
        reader.next_message()


messages = st.lists(
    st.builds(
        Msg,
        csid=st.sampled_from([2, 3, 4, 63, 64, 319, 320, 65599]),
        timestamp_ms=st.integers(0, (1 << 33)),
        type_id=st.sampled_from([8, 9, 18, 20]),
        stream_id=st.sampled_from([0, 1, 0xFFFFFFFF]),
        payload=st.binary(max_size=300),
    ),
    max_size=12,
)


@settings(max_examples=150)
@given(messages, st.integers(1, 200), st.data())
def test_writer_then_reader_round_trips_with_any_split(
    msgs: list[Msg], chunk_size: int, data: st.DataObject
) -> None:
    writer = ChunkWriter(chunk_size)
    wire = b"".join(
        writer.encode(m.csid, m.timestamp_ms, m.type_id, m.stream_id, m.payload) for m in msgs
    )
    cuts = sorted(data.draw(st.lists(st.integers(0, len(wire)), max_size=8)))
    reader = ChunkReader()
    reader.set_chunk_size(chunk_size)
    got: list[RawMessage] = []
    for start, end in zip([0, *cuts], [*cuts, len(wire)], strict=True):
        reader.feed(wire[start:end])
        got += _read_all(reader)
    assert got == [
        RawMessage(m.csid, m.timestamp_ms & TIMESTAMP_MASK, m.type_id, m.stream_id, m.payload)
        for m in msgs
    ]


@given(st.binary(max_size=400), st.integers(1, 64))
def test_arbitrary_bytes_raise_only_rtmp_errors(data: bytes, chunk_size: int) -> None:
    reader = ChunkReader(RtmpLimits(max_message_bytes=4096, max_chunk_streams=8))
    reader.set_chunk_size(chunk_size)
    reader.feed(data)
    with contextlib.suppress(RtmpError):
        _read_all(reader)


def _chunks_of(wire: bytes, length: int, chunk_size: int) -> list[bytes]:
    """Split one encoded message (1-byte csid, no extended timestamp) into its chunks."""
    count = max(1, -(-length // chunk_size))
    first = len(wire) - length - (count - 1)  # the first chunk's header
    chunks = [wire[: first + min(length, chunk_size)]]
    pos = len(chunks[0])
    while pos < len(wire):
        chunks.append(wire[pos : pos + 1 + chunk_size])
        pos += 1 + chunk_size
    return chunks


@settings(max_examples=150)
@given(
    st.lists(st.binary(min_size=1, max_size=700), min_size=1, max_size=6),
    st.integers(1, 150),
    st.data(),
)
def test_interleaved_continuations_with_any_split(
    payloads: list[bytes], chunk_size: int, data: st.DataObject
) -> None:
    """Messages on two chunk streams with their chunks interleaved at random, fed in random
    pieces: the run of continuation chunks taken in one step stops at the other stream's
    chunk and at the end of the input, and resumes where it stopped. Both ways of taking a
    run (the strided cut, a slice per chunk from SLICED_CHUNK_BYTES up) are drawn."""
    sliced_from = data.draw(st.sampled_from([chunk.SLICED_CHUNK_BYTES, 1]))
    with mock.patch.object(chunk, "SLICED_CHUNK_BYTES", sliced_from):
        _interleaved_continuations(payloads, chunk_size, data)


def _interleaved_continuations(payloads: list[bytes], chunk_size: int, data: st.DataObject) -> None:
    writer = ChunkWriter(chunk_size)
    queues: list[list[bytes]] = [[], []]
    for i, payload in enumerate(payloads):
        csid = 4 + i % 2
        wire = writer.encode(csid, i * 10, 9, 1, payload)
        queues[i % 2] += _chunks_of(wire, len(payload), chunk_size)
    order = data.draw(st.permutations([0] * len(queues[0]) + [1] * len(queues[1])))
    taken = [0, 0]
    pieces = []
    for q in order:
        pieces.append(queues[q][taken[q]])
        taken[q] += 1
    stream = b"".join(pieces)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=6)))
    reader = ChunkReader()
    reader.set_chunk_size(chunk_size)
    got: list[RawMessage] = []
    for start, end in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        reader.feed(bytearray(stream[start:end]))
        got += _read_all(reader)
    assert sorted(m.payload for m in got) == sorted(payloads)
    for csid in (4, 5):  # each chunk stream's messages in order
        mine = [p for i, p in enumerate(payloads) if 4 + i % 2 == csid]
        assert [m.payload for m in got if m.csid == csid] == mine
    assert reader.held_bytes == 0


def test_reader_keeps_no_reference_to_its_input() -> None:
    """Once next_message returns None the fed buffer may be reused: the caller's read buffer
    is overwritten by the next read, and nothing read so far changes."""
    writer = ChunkWriter(128)
    wire = writer.encode(6, 0, 9, 1, bytes(range(256)) * 3) + writer.encode(6, 40, 9, 1, b"x")
    reader = ChunkReader()
    buffer = bytearray(wire[:300])
    reader.feed(buffer)
    assert _read_all(reader) == []
    buffer[:] = bytes(len(buffer))  # the next read lands in the same buffer
    reader.feed(wire[300:])
    assert [m.payload for m in _read_all(reader)] == [bytes(range(256)) * 3, b"x"]
    assert reader.held_bytes == 0 and reader.buffered == 0


@pytest.mark.parametrize("chunk_size", [128, 4096, 65536])
def test_keyframe_remaining_counts_exactly_the_bytes_that_complete_it(chunk_size: int) -> None:
    """An edge that reads in batches asks to be woken once a keyframe is whole
    (ingest/reads.py): after any split of a lone keyframe, what it is told is exactly the rest
    of the wire, headers included; an inter frame or audio never counts."""
    keyframe = bytes([0x17, 1]) + bytes(9000)  # FLV: keyframe, AVC NALU
    writer = ChunkWriter(chunk_size)
    wire = writer.encode(6, 0, 9, 1, keyframe)
    for split in range(20, len(wire), 97):
        reader = ChunkReader()
        reader.set_chunk_size(chunk_size)
        reader.feed(wire[:split])
        assert _read_all(reader) == []
        assert reader.keyframe_remaining() == len(wire) - split, split
        reader.feed(wire[split:])
        assert [m.payload for m in _read_all(reader)] == [keyframe]
        assert reader.keyframe_remaining() == 0
    enhanced = bytes([0x80 | 0x10 | 1]) + b"hvc1" + bytes(5000)  # ExHeader, keyframe, CodedFrames
    for payload, counted in [(bytes([0x27, 1]) + bytes(5000), False), (enhanced, True)]:
        reader = ChunkReader()
        reader.set_chunk_size(chunk_size)
        reader.feed(ChunkWriter(chunk_size).encode(6, 0, 9, 1, payload)[:100])
        assert _read_all(reader) == []
        assert (reader.keyframe_remaining() > 0) is counted


def test_keyframe_remaining_is_a_lower_bound_with_interleaved_audio() -> None:
    """Audio chunks between the keyframe's make the rest longer than counted, never shorter:
    woken early, the edge just counts again."""
    writer = ChunkWriter(128)
    video = writer.encode(6, 0, 9, 1, bytes([0x17, 1]) + bytes(1000))
    audio = writer.encode(4, 0, 8, 1, bytes([0xAF, 1]) + bytes(100))
    wire = video[:300] + audio + video[300:]
    reader = ChunkReader()
    reader.set_chunk_size(128)
    reader.feed(wire[:200])
    assert _read_all(reader) == []
    assert 0 < reader.keyframe_remaining() <= len(wire) - 200
