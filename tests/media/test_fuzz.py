"""Any bytes into any decoder: the only exception that may come out is MediaError."""

from __future__ import annotations

import contextlib

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from livechannel.media.aac import parse_audio_specific_config
from livechannel.media.bits import BitReader
from livechannel.media.demux import Demuxer
from livechannel.media.errors import MediaError
from livechannel.media.flv import iter_flv_tags, parse_audio_tag, parse_video_tag
from livechannel.media.h264 import avcc_to_annexb, parse_avc_decoder_config
from livechannel.media.sps import parse_sps

FUZZ = settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
AVCC_PREFIX = bytes.fromhex("0164001effe1")
AVCC = bytes.fromhex(
    "0164001effe100196764001eacd940a02ff9610000030001000003003c0f162d9601000468ef8fcbfdf8f800"
)


def only_media_error(fn, *args) -> None:  # type: ignore[no-untyped-def]
    with contextlib.suppress(MediaError):
        fn(*args)


@FUZZ
@given(st.binary(max_size=300))
def test_tag_parsers(data: bytes) -> None:
    only_media_error(parse_video_tag, data)
    only_media_error(parse_audio_tag, data)
    only_media_error(parse_video_tag, b"\x97" + data)  # into the ModEx loop
    only_media_error(parse_video_tag, b"\x91" + data)


@FUZZ
@given(st.binary(max_size=200))
def test_avcc_and_sps(data: bytes) -> None:
    only_media_error(parse_avc_decoder_config, data)
    only_media_error(parse_avc_decoder_config, AVCC_PREFIX + data)
    only_media_error(parse_sps, data)
    only_media_error(parse_sps, b"\x67" + data)
    only_media_error(parse_sps, b"\x67\x64\x00\x1f" + data)  # High: chroma, scaling lists
    for size in (1, 2, 3, 4, 0, 5):
        only_media_error(avcc_to_annexb, data, size)


@FUZZ
@given(st.binary(max_size=16))
def test_asc(data: bytes) -> None:
    only_media_error(parse_audio_specific_config, data)


@FUZZ
@given(st.binary(max_size=40), st.integers(0, 64))
def test_bit_reader(data: bytes, n: int) -> None:
    r = BitReader(data)

    def read_all() -> None:
        while True:
            r.ue()
            r.se()
            r.u(n)

    only_media_error(read_all)


@FUZZ
@given(st.binary(max_size=400))
def test_flv_file(data: bytes) -> None:
    only_media_error(lambda: list(iter_flv_tags(data)))
    only_media_error(lambda: list(iter_flv_tags(b"FLV\x01\x05\x00\x00\x00\x09" + data)))


@FUZZ
@given(
    st.lists(
        st.tuples(
            st.booleans(),
            st.integers(-(2**40), 2**40),
            st.one_of(
                st.binary(max_size=120),
                st.binary(max_size=60).map(lambda b: b"\x17\x01\x00\x00\x00" + b),
                st.binary(max_size=60).map(lambda b: b"\x27\x01\x00\x00\x00" + b),
                st.binary(max_size=8).map(lambda b: b"\xaf\x00" + b),
                st.binary(max_size=60).map(lambda b: b"\xaf\x01" + b),
            ),
        ),
        max_size=12,
    )
)
def test_demuxer_message_sequences(messages: list[tuple[bool, int, bytes]]) -> None:
    d = Demuxer()
    d.video(0, b"\x17\x00\x00\x00\x00" + AVCC)  # a valid config first: frames get parsed
    d.audio(0, b"\xaf\x00\x12\x10")
    for is_video, timestamp_ms, payload in messages:
        only_media_error(d.video if is_video else d.audio, timestamp_ms, payload)
