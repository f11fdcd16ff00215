"""The ingest hot path's shortcuts give exactly what the general code gives.

Demuxer.video/audio take a fast path for the common message (a legacy AVC NALU or raw AAC
message once configured); `_video`/`_audio` are the general parsers they must agree with,
on any bytes. AdtsFramer must equal adts_header. The TS packetizer (C-level chunking) must
equal the obvious packet-by-packet algorithm written out below.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from livechannel.media.aac import (
    MAX_ADTS_PAYLOAD_BYTES,
    AdtsFramer,
    adts_header,
    parse_audio_specific_config,
)
from livechannel.media.demux import Demuxer
from livechannel.media.errors import MediaError
from livechannel.media.h264 import avcc_access_unit, build_access_unit, split_avcc
from livechannel.media.mpegts import _STUFFING, SYNC_BYTE, TS_PAYLOAD_BYTES, _Stream

CHECKS = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
AVCC = bytes.fromhex(
    "0164001effe100196764001eacd940a02ff9610000030001000003003c0f162d9601000468ef8fcbfdf8f800"
)
VIDEO_SEQ = b"\x17\x00\x00\x00\x00" + AVCC
AUDIO_SEQ = b"\xaf\x00\x12\x10"  # AAC LC, 44.1 kHz, stereo


def outcome(fn, *args):  # type: ignore[no-untyped-def]
    try:
        return fn(*args)
    except MediaError:
        return MediaError


def configured() -> Demuxer:
    d = Demuxer()
    d.video(0, VIDEO_SEQ)
    d.audio(0, AUDIO_SEQ)
    return d


nal = st.binary(min_size=0, max_size=40).map(lambda b: bytes([0x41 | 0x20]) + b)
idr = st.binary(min_size=0, max_size=40).map(lambda b: b"\x65" + b)
nals = st.lists(st.one_of(nal, idr, st.sampled_from([b"\x09\xf0", b"\x67\x00", b"\x68\x01"])))


@st.composite
def video_bodies(draw: st.DrawFn) -> bytes:
    """Mostly plausible AVC messages (any first byte, packet type, CTS, NAL framing), some
    with lengths that lie, some plain garbage."""
    if draw(st.booleans()):
        return draw(st.binary(max_size=60))
    first = draw(st.sampled_from([0x17, 0x27, 0x37, 0x57, 0x97, 0x12, 0x07, 0x77]))
    kind = draw(st.sampled_from([0, 1, 1, 1, 2, 5]))
    cts = draw(st.integers(-(2**23), 2**23 - 1)).to_bytes(3, "big", signed=True)
    body = b"".join(len(n).to_bytes(4, "big") + n for n in draw(nals))
    if draw(st.booleans()):
        body += draw(st.binary(max_size=6))  # a truncated or overlong length field
    return bytes((first, kind)) + cts + body


@CHECKS
@given(st.integers(0, 2**40), video_bodies())
def test_video_fast_path_equals_general_parser(timestamp_ms: int, body: bytes) -> None:
    fast, general = configured(), configured()
    assert outcome(fast.video, timestamp_ms, body) == outcome(general._video, timestamp_ms, body)
    assert fast.video_config == general.video_config


def split_and_build(data: bytes, size: int):  # type: ignore[no-untyped-def]
    nals = split_avcc(data, size)
    return build_access_unit(nals, configured().video_config) if nals else (b"", False)


@CHECKS
@given(st.sampled_from([1, 2, 3, 4, 5]), st.data())
def test_access_unit_in_one_pass_equals_split_and_build(size: int, data: st.DataObject) -> None:
    body = data.draw(
        st.one_of(
            st.binary(max_size=60),
            nals.map(lambda ns: b"".join(len(n).to_bytes(size % 5 or 1, "big") + n for n in ns)),
        )
    )
    config = configured().video_config
    head = data.draw(st.binary(max_size=6))  # what comes before the NAL units (start=)
    got = outcome(lambda: avcc_access_unit(memoryview(head + body), size, config, start=len(head)))
    assert got == outcome(split_and_build, body, size)


@CHECKS
@given(
    st.integers(0, 2**40),
    st.sampled_from([0xAF, 0xAE, 0xA0, 0x2F, 0x9F, 0xBF]),
    st.sampled_from([0, 1, 1, 2]),
    st.one_of(st.binary(max_size=40), st.integers(8180, 8200).map(lambda n: b"\x21" * n)),
)
def test_audio_fast_path_equals_general_parser(
    timestamp_ms: int, first: int, kind: int, raw: bytes
) -> None:
    body = bytes((first, kind)) + raw
    fast, general = configured(), configured()
    assert outcome(fast.audio, timestamp_ms, body) == outcome(general._audio, timestamp_ms, body)
    assert fast.audio_config == general.audio_config


def test_audio_fast_path_follows_a_new_config() -> None:
    d = configured()
    d.audio(0, b"\xaf\x00\x11\x88")  # AAC LC 48 kHz mono
    (frame,) = d.audio(21, b"\xaf\x01" + b"\x00" * 10)
    assert frame.data[:7] == adts_header(parse_audio_specific_config(b"\x11\x88"), 10)


@given(st.sampled_from(["1210", "1190", "1188", "0a10", "1390", "1608"]),
       st.integers(0, MAX_ADTS_PAYLOAD_BYTES + 3))  # fmt: skip
def test_adts_framer_equals_adts_header(asc_hex: str, n: int) -> None:
    config = parse_audio_specific_config(bytes.fromhex(asc_hex))
    framer = AdtsFramer(config)
    assert outcome(framer.header, n) == outcome(adts_header, config, n)


def reference_packets(pid: int, cc: int, pes: bytes, af_body: bytes) -> tuple[bytes, int]:
    """13818-1 2.4.3.2 packet by packet: the first packet carries payload_unit_start and the
    adaptation field (if any); the last one is filled up with adaptation-field stuffing."""
    out, pos, first = b"", 0, True
    while pos < len(pes) or first:
        af = (bytes((len(af_body),)) + af_body) if first and af_body else b""
        room = TS_PAYLOAD_BYTES - len(af)
        take = min(room, len(pes) - pos)
        if take < room:  # stuff the adaptation field (creating it if needed)
            af = (
                bytes((len(af) - 1 + room - take,)) + af[1:] + b"\xff" * (room - take)
                if af
                else _STUFFING[room - take]
            )
        control = 0x30 if af else 0x10
        start = 0x40 if first else 0
        out += bytes((SYNC_BYTE, start | pid >> 8, pid & 0xFF, control | cc)) + af
        out += pes[pos : pos + take]
        pos += take
        cc = (cc + 1) & 0xF
        first = False
    return out, cc


@CHECKS
@given(
    st.integers(0, 15),
    st.binary(max_size=19),
    st.integers(0, 30_000),  # up to ~163 packets: several struct blocks, headers repeated
    st.sampled_from([b"", b"\x40", b"\x10" + bytes(6), b"\x50" + bytes(6)]),
)
def test_packetize_equals_packet_by_packet(cc: int, head: bytes, size: int, af_body: bytes) -> None:
    payload = bytes(i * 7 & 0xFF for i in range(size))
    stream = _Stream(0x101)
    stream.cc = cc
    got = stream.packetize(head, payload, af_body)
    want, want_cc = reference_packets(0x101, cc, head + payload, af_body)
    assert got == want
    assert stream.cc == want_cc


def test_packetize_block_boundaries() -> None:
    """Counts of full packets around the struct block size cut the same as packet by packet."""
    for full in (63, 64, 65, 127, 128, 129, 300):
        payload = bytes(i * 13 & 0xFF for i in range(TS_PAYLOAD_BYTES * full + 1))
        stream = _Stream(0x100)
        assert stream.packetize(b"", payload, b"") == reference_packets(0x100, 0, payload, b"")[0]
