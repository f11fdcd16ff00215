"""AMF0: one byte table drives both decode and encode; edge cases; hypothesis."""

from __future__ import annotations

import contextlib
import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from livechannel.rtmp import amf0
from livechannel.rtmp.amf0 import UNDEFINED, Amf0Date, EcmaArray
from livechannel.rtmp.errors import AmfDecodeError, LocalProtocolError, RtmpError

# (value, exact AMF0 bytes) - decoded and encoded both ways.
TABLE: list[tuple[Any, bytes]] = [
    (0.0, bytes.fromhex("00 0000000000000000")),
    (1.0, bytes.fromhex("00 3ff0000000000000")),
    (-2.5, bytes.fromhex("00 c004000000000000")),
    (True, bytes.fromhex("01 01")),
    (False, bytes.fromhex("01 00")),
    ("", bytes.fromhex("02 0000")),
    ("connect", bytes.fromhex("02 0007") + b"connect"),
    ("é", bytes.fromhex("02 0002 c3a9")),
    (None, bytes.fromhex("05")),
    (UNDEFINED, bytes.fromhex("06")),
    ({}, bytes.fromhex("03 000009")),
    (
        {"app": "live"},
        bytes.fromhex("03 0003")
        + b"app"
        + bytes.fromhex("02 0004")
        + b"live"
        + bytes.fromhex("000009"),
    ),
    (
        EcmaArray(width=1280.0),
        bytes.fromhex("08 00000001 0005") + b"width" + bytes.fromhex("00 4094000000000000 000009"),
    ),
    ([1.0, "a"], bytes.fromhex("0a 00000002 00 3ff0000000000000 02 0001") + b"a"),
    ([], bytes.fromhex("0a 00000000")),
    (Amf0Date(1.0, 0), bytes.fromhex("0b 3ff0000000000000 0000")),
    ("x" * 70000, bytes.fromhex("0c 00011170") + b"x" * 70000),
    (
        {"o": {"p": None}},
        bytes.fromhex("03 0001")
        + b"o"
        + bytes.fromhex("03 0001")
        + b"p"
        + bytes.fromhex("05 000009 000009"),
    ),
]


@pytest.mark.parametrize(("value", "wire"), TABLE, ids=[w[:12].hex() for _, w in TABLE])
def test_table_decodes(value: Any, wire: bytes) -> None:
    decoded, end = amf0.decode_value(wire)
    assert end == len(wire)
    assert decoded == value
    assert type(decoded) is type(value) or (isinstance(value, tuple) and isinstance(decoded, list))


@pytest.mark.parametrize(("value", "wire"), TABLE, ids=[w[:12].hex() for _, w in TABLE])
def test_table_encodes(value: Any, wire: bytes) -> None:
    assert amf0.encode_value(value) == wire


def test_ints_encode_as_numbers() -> None:
    assert amf0.encode_value(3) == amf0.encode_value(3.0)


def test_decode_values_reads_a_whole_command() -> None:
    wire = amf0.encode_values("_result", 1.0, None, 1.0)
    assert amf0.decode_values(wire) == ["_result", 1.0, None, 1.0]


def test_typed_object_decodes_as_its_properties() -> None:
    wire = (
        bytes.fromhex("10 0003")
        + b"Foo"
        + bytes.fromhex("0001")
        + b"a"
        + bytes.fromhex("0101 000009")
    )
    assert amf0.decode_value(wire)[0] == {"a": True}


def test_reference_names_an_earlier_object() -> None:
    inner = bytes.fromhex("03 0001") + b"k" + bytes.fromhex("05 000009")
    wire = bytes.fromhex("0a 00000002") + inner + bytes.fromhex("07 0001")
    value = amf0.decode_value(wire)[0]
    assert value == [{"k": None}, {"k": None}]  # index 0 is the array itself, 1 the object
    assert value[0] is value[1]


def test_reference_to_nothing_is_refused() -> None:
    with pytest.raises(AmfDecodeError):
        amf0.decode_value(bytes.fromhex("07 0000"))


def test_ecma_array_without_end_marker_is_tolerated() -> None:
    wire = bytes.fromhex("08 00000001 0001") + b"a" + bytes.fromhex("0101")
    assert amf0.decode_value(wire)[0] == {"a": True}


def test_unsupported_and_xml_markers() -> None:
    assert amf0.decode_value(bytes.fromhex("0d"))[0] is None
    assert amf0.decode_value(bytes.fromhex("0f 00000002") + b"<a")[0] == "<a"


def test_non_utf8_bytes_survive_a_round_trip() -> None:
    # librtmp percent-decodes names: "caf%E9" arrives as raw latin-1 bytes.
    wire = bytes.fromhex("02 0004") + b"caf\xe9"
    name = amf0.decode_value(wire)[0]
    assert isinstance(name, str)
    assert amf0.encode_value(name) == wire


@pytest.mark.parametrize(
    "wire",
    [
        b"",
        bytes.fromhex("00 3ff0"),  # truncated number
        bytes.fromhex("02 0005") + b"abc",  # string shorter than its length
        bytes.fromhex("03 0001") + b"a",  # object without a value
        bytes.fromhex("03 0001") + b"a" + bytes.fromhex("05"),  # object without end
        bytes.fromhex("04"),  # movieclip (reserved)
        bytes.fromhex("09"),  # object end where a value belongs
        bytes.fromhex("0e"),  # recordset (reserved)
        bytes.fromhex("11 01"),  # AMF3 switch
        bytes.fromhex("12"),  # no such marker
        bytes.fromhex("0a ffffffff 05"),  # strict array claiming 4G entries
    ],
)
def test_malformed_input_raises_amf_decode_error(wire: bytes) -> None:
    with pytest.raises(AmfDecodeError):
        amf0.decode_value(wire)


def test_nesting_depth_is_bounded() -> None:
    deep = b"\x0a\x00\x00\x00\x01" * 40 + b"\x05"
    with pytest.raises(AmfDecodeError):
        amf0.decode_value(deep)
    assert amf0.decode_value(b"\x0a\x00\x00\x00\x01" * 5 + b"\x05", max_depth=5)[0] == [
        [[[[None]]]]
    ]
    with pytest.raises(AmfDecodeError):
        amf0.decode_value(b"\x0a\x00\x00\x00\x01" * 6 + b"\x05", max_depth=5)


@pytest.mark.parametrize(
    "value",
    [object(), {1: "a"}, "\ud800", 10**400, Amf0Date(0.0, 1 << 20), [[[[]]]]],
)
def test_unencodable_values_raise_local_protocol_error(value: Any) -> None:
    with pytest.raises(LocalProtocolError):
        amf0.encode_value(value, max_depth=3)


@given(st.binary(max_size=300))
def test_arbitrary_bytes_raise_only_rtmp_errors(data: bytes) -> None:
    with contextlib.suppress(RtmpError):
        amf0.decode_values(data)


amf_values = st.recursive(
    st.none()
    | st.booleans()
    | st.floats(allow_nan=False)
    | st.text(max_size=20)
    | st.just(UNDEFINED),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(min_size=1, max_size=8), children, max_size=4)
        | st.dictionaries(st.text(min_size=1, max_size=8), children, max_size=4).map(EcmaArray)
    ),
    max_leaves=20,
)


@given(amf_values)
def test_encode_then_decode_is_identity(value: Any) -> None:
    decoded, _end = amf0.decode_value(amf0.encode_value(value))
    assert decoded == value


@given(st.floats(allow_nan=True))
def test_numbers_round_trip_bit_exact(number: float) -> None:
    decoded = amf0.decode_value(amf0.encode_value(number))[0]
    assert decoded == number or (math.isnan(decoded) and math.isnan(number))
