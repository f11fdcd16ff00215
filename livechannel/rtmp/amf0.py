"""AMF0 (Adobe "Action Message Format -- AMF 0", 2007): decode and encode.

Python mapping: number → float, boolean → bool, string / long string / XML document → str,
object / typed object → dict, ECMA array → EcmaArray (a dict), strict array → list,
null / unsupported → None, undefined → UNDEFINED, date → Amf0Date. References (marker 7)
resolve to the object they name. AMF3 (the AVM+ switch, marker 0x11) is refused: no RTMP
publisher sends it (docs/rtmp-clients.md, "Common to all").

Strings decode as UTF-8 with `surrogateescape`: librtmp percent-decodes stream names, so a
name may carry raw non-UTF-8 bytes; they survive a decode/encode round trip unchanged and the
policy layer decides what to do with them.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, Final

from livechannel.rtmp.errors import AmfDecodeError, LocalProtocolError
from livechannel.rtmp.limits import MAX_AMF_DEPTH

_DOUBLE: Final = struct.Struct(">d")
_U16: Final = struct.Struct(">H")
_U32: Final = struct.Struct(">I")
_DATE: Final = struct.Struct(">dh")

# A plain string carries a u16 length; longer text must use the long-string marker (§2.14).
MAX_SHORT_STRING_BYTES = 0xFFFF
# Long strings and strict-array counts are u32 on the wire (§2.12, §2.14).
MAX_LONG_STRING_BYTES = 0xFFFFFFFF
_OBJECT_END: Final = b"\x00\x00\x09"
_TEXT_ENCODING: Final = "utf-8"
_TEXT_ERRORS: Final = "surrogateescape"


class Marker(IntEnum):
    """AMF0 type markers (§2.1)."""

    NUMBER = 0x00
    BOOLEAN = 0x01
    STRING = 0x02
    OBJECT = 0x03
    MOVIECLIP = 0x04  # reserved, not supported
    NULL = 0x05
    UNDEFINED = 0x06
    REFERENCE = 0x07
    ECMA_ARRAY = 0x08
    OBJECT_END = 0x09
    STRICT_ARRAY = 0x0A
    DATE = 0x0B
    LONG_STRING = 0x0C
    UNSUPPORTED = 0x0D
    RECORDSET = 0x0E  # reserved, not supported
    XML_DOCUMENT = 0x0F
    TYPED_OBJECT = 0x10
    AVMPLUS = 0x11  # switch to AMF3


class _Undefined:
    """The AMF0 `undefined` value (distinct from `null`, which is None)."""

    _instance: _Undefined | None = None

    def __new__(cls) -> _Undefined:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNDEFINED"


UNDEFINED: Final = _Undefined()


class EcmaArray(dict[str, Any]):
    """An associative array (marker 8); onMetaData usually arrives as one."""


@dataclass(frozen=True, slots=True)
class Amf0Date:
    """A date (§2.13): milliseconds since the Unix epoch; the time zone is reserved, 0."""

    epoch_ms: float
    timezone_min: int = 0


# ---------------------------------------------------------------------------- decoding


class _Decoder:
    __slots__ = ("_complex", "_data", "_max_depth", "pos")

    def __init__(self, data: bytes, pos: int, max_depth: int) -> None:
        self._data = data
        self.pos = pos
        self._max_depth = max_depth
        self._complex: list[Any] = []  # objects a reference may name, in order of appearance

    def _take(self, n: int) -> bytes:
        end = self.pos + n
        if end > len(self._data):
            raise AmfDecodeError(f"AMF0 value truncated: need {n} bytes at offset {self.pos}")
        chunk = self._data[self.pos : end]
        self.pos = end
        return chunk

    def _text(self, n: int) -> str:
        return self._take(n).decode(_TEXT_ENCODING, _TEXT_ERRORS)

    def _u16(self) -> int:
        value: int = _U16.unpack(self._take(2))[0]
        return value

    def _u32(self) -> int:
        value: int = _U32.unpack(self._take(4))[0]
        return value

    def value(self, depth: int) -> Any:
        marker = self._take(1)[0]
        if marker == Marker.NUMBER:
            return _DOUBLE.unpack(self._take(8))[0]
        if marker == Marker.BOOLEAN:
            return self._take(1)[0] != 0
        if marker == Marker.STRING:
            return self._text(self._u16())
        if marker in (Marker.NULL, Marker.UNSUPPORTED):
            return None
        if marker == Marker.UNDEFINED:
            return UNDEFINED
        if marker in (Marker.OBJECT, Marker.ECMA_ARRAY, Marker.TYPED_OBJECT):
            return self._object(marker, depth)
        if marker == Marker.STRICT_ARRAY:
            return self._strict_array(depth)
        if marker == Marker.REFERENCE:
            index = self._u16()
            if index >= len(self._complex):
                raise AmfDecodeError(f"AMF0 reference {index} names no earlier object")
            return self._complex[index]
        if marker == Marker.DATE:
            epoch_ms, tz = _DATE.unpack(self._take(10))
            return Amf0Date(epoch_ms, tz)
        if marker in (Marker.LONG_STRING, Marker.XML_DOCUMENT):
            return self._text(self._u32())
        if marker == Marker.AVMPLUS:
            raise AmfDecodeError("AMF3 values inside AMF0 are not supported")
        raise AmfDecodeError(f"unsupported AMF0 marker 0x{marker:02x}")

    def _enter(self, depth: int) -> int:
        if depth >= self._max_depth:
            raise AmfDecodeError(f"AMF0 nesting deeper than {self._max_depth}")
        return depth + 1

    def _object(self, marker: int, depth: int) -> dict[str, Any]:
        inner = self._enter(depth)
        if marker == Marker.TYPED_OBJECT:
            self._text(self._u16())  # the class name: meaningless to us, dropped
        elif marker == Marker.ECMA_ARRAY:
            self._u32()  # the count is only a hint (§2.10); the end marker terminates
        result: dict[str, Any] = EcmaArray() if marker == Marker.ECMA_ARRAY else {}
        self._complex.append(result)
        while True:
            if marker == Marker.ECMA_ARRAY and self.pos == len(self._data):
                return result  # some encoders omit the end marker after an ECMA array
            key = self._text(self._u16())
            if not key and self.pos < len(self._data) and self._data[self.pos] == Marker.OBJECT_END:
                self.pos += 1
                return result
            result[key] = self.value(inner)

    def _strict_array(self, depth: int) -> list[Any]:
        inner = self._enter(depth)
        count = self._u32()
        result: list[Any] = []
        self._complex.append(result)
        for _ in range(count):  # every value takes >= 1 byte, so garbage counts end quickly
            result.append(self.value(inner))
        return result


def decode_value(
    data: bytes, offset: int = 0, *, max_depth: int = MAX_AMF_DEPTH
) -> tuple[Any, int]:
    """Decode one value at `offset`; return it and the offset just past it."""
    decoder = _Decoder(data, offset, max_depth)
    return decoder.value(0), decoder.pos


def decode_values(data: bytes, *, max_depth: int = MAX_AMF_DEPTH) -> list[Any]:
    """Decode a whole command/data message body: a sequence of values up to the end."""
    decoder = _Decoder(data, 0, max_depth)
    values = []
    while decoder.pos < len(data):
        values.append(decoder.value(0))
    return values


# ---------------------------------------------------------------------------- encoding


def _encode_text(text: str) -> bytes:
    try:
        return text.encode(_TEXT_ENCODING, _TEXT_ERRORS)
    except UnicodeEncodeError as exc:
        raise LocalProtocolError(f"string not encodable as AMF0: {exc}") from None


def _encode_key(key: object) -> bytes:
    if not isinstance(key, str):
        raise LocalProtocolError(f"AMF0 object keys must be str, not {type(key).__name__}")
    raw = _encode_text(key)
    if len(raw) > MAX_SHORT_STRING_BYTES:
        raise LocalProtocolError("AMF0 object key longer than 65535 bytes")
    return _U16.pack(len(raw)) + raw


def _check_depth(depth: int, max_depth: int) -> None:
    if depth >= max_depth:
        raise LocalProtocolError(f"AMF0 value nested deeper than {max_depth}")


def _encode(value: Any, out: bytearray, depth: int, max_depth: int) -> None:
    if value is None:
        out.append(Marker.NULL)
    elif value is UNDEFINED:
        out.append(Marker.UNDEFINED)
    elif isinstance(value, bool):
        out += bytes((Marker.BOOLEAN, 1 if value else 0))
    elif isinstance(value, int | float):
        try:
            out += bytes((Marker.NUMBER,)) + _DOUBLE.pack(float(value))
        except OverflowError:
            raise LocalProtocolError(f"number {value} does not fit a double") from None
    elif isinstance(value, str):
        raw = _encode_text(value)
        if len(raw) <= MAX_SHORT_STRING_BYTES:
            out += bytes((Marker.STRING,)) + _U16.pack(len(raw)) + raw
        elif len(raw) <= MAX_LONG_STRING_BYTES:
            out += bytes((Marker.LONG_STRING,)) + _U32.pack(len(raw)) + raw
        else:
            raise LocalProtocolError("string longer than 4 GiB")
    elif isinstance(value, dict):
        _check_depth(depth, max_depth)
        if isinstance(value, EcmaArray):
            out += bytes((Marker.ECMA_ARRAY,)) + _U32.pack(len(value))
        else:
            out.append(Marker.OBJECT)
        for key, item in value.items():
            out += _encode_key(key)
            _encode(item, out, depth + 1, max_depth)
        out += _OBJECT_END
    elif isinstance(value, list | tuple):
        _check_depth(depth, max_depth)
        out += bytes((Marker.STRICT_ARRAY,)) + _U32.pack(len(value))
        for item in value:
            _encode(item, out, depth + 1, max_depth)
    elif isinstance(value, Amf0Date):
        try:
            out += bytes((Marker.DATE,)) + _DATE.pack(value.epoch_ms, value.timezone_min)
        except struct.error:
            raise LocalProtocolError(f"{value!r} does not fit AMF0's date layout") from None
    else:
        raise LocalProtocolError(f"cannot encode {type(value).__name__} as AMF0")


def encode_value(value: Any, *, max_depth: int = MAX_AMF_DEPTH) -> bytes:
    """Encode one value. Raises LocalProtocolError for values AMF0 cannot carry."""
    out = bytearray()
    _encode(value, out, 0, max_depth)
    return bytes(out)


def encode_values(*values: Any, max_depth: int = MAX_AMF_DEPTH) -> bytes:
    """Encode a sequence of values back to back (a command or data message body)."""
    out = bytearray()
    for value in values:
        _encode(value, out, 0, max_depth)
    return bytes(out)
