"""FLV tag bodies (legacy and Enhanced RTMP) and the FLV file reader."""

from __future__ import annotations

import pytest

from livechannel.media.errors import MediaError
from livechannel.media.flv import PacketKind, iter_flv_tags, parse_audio_tag, parse_video_tag

K = PacketKind
AVCC = "0164001effe100196764001eacd940a02ff9610000030001000003003c0f162d9601000468ef8fcbfdf8f800"

# (case, tag body hex, frame type, codec, kind, composition time ms, data hex)
VIDEO_TABLE = [
    ("ffmpeg AVC sequence header", "1700000000" + AVCC, 1, "H264", K.SEQUENCE_HEADER, 0, AVCC),
    ("ffmpeg P frame, cts 133 ms", "2701000085" "00000002419a", 2, "H264", K.CODED_FRAMES, 133,
     "00000002419a"),
    ("B frame with negative cts -10 ms", "2701fffff6" "00000001" "01", 2, "H264",
     K.CODED_FRAMES, -10, "0000000101"),
    ("ffmpeg end of sequence", "1702000000", 1, "H264", K.END_OF_SEQUENCE, 0, ""),
    ("disposable inter frame", "3701000000" "0000000101", 3, "H264", K.CODED_FRAMES, 0,
     "0000000101"),
    ("unknown AVCPacketType", "1705000000", 1, "H264", K.IGNORED, 0, ""),
    ("video info/command frame", "5700", 5, "H264", K.IGNORED, 0, ""),
    ("legacy HEVC codec id 12", "1c00000000" "01", 1, "HEVC", K.CODED_FRAMES, 0, "0000000001"),
    ("Sorenson H.263", "22" "0000840008", 2, "Sorenson H.263", K.CODED_FRAMES, 0, "0000840008"),
    ("VP6", "14" "00", 1, "VP6", K.CODED_FRAMES, 0, "00"),
    ("unknown codec id 9", "19" "00", 1, "video codec id 9", K.CODED_FRAMES, 0, "00"),
    # Enhanced RTMP: 0x80 | frame type << 4 | packet type, then a FourCC.
    ("E-RTMP HEVC sequence start", "90" "68766331" "01", 1, "HEVC", K.SEQUENCE_HEADER, 0, "01"),
    ("E-RTMP HEVC coded frames, cts 16", "a1" "68766331" "000010" "aa", 2, "HEVC",
     K.CODED_FRAMES, 16, "aa"),
    ("E-RTMP AV1 coded frames X", "93" "61763031" "bb", 1, "AV1", K.CODED_FRAMES, 0, "bb"),
    ("E-RTMP VP9 sequence end", "92" "76703039", 1, "VP9", K.END_OF_SEQUENCE, 0, ""),
    ("E-RTMP v2 AVC sequence start", "90" "61766331" + AVCC, 1, "H264", K.SEQUENCE_HEADER, 0,
     AVCC),
    ("E-RTMP v2 AVC coded frames, cts 33", "a1" "61766331" "000021" "0000000101", 2, "H264",
     K.CODED_FRAMES, 33, "0000000101"),
    ("E-RTMP v2 AVC coded frames X", "a3" "61766331" "0000000101", 2, "H264", K.CODED_FRAMES, 0,
     "0000000101"),
    ("E-RTMP ModEx (3 bytes) then coded frames", "97" "02" "000000" "01" "61766331" "000005" "cc",
     1, "H264", K.CODED_FRAMES, 5, "cc"),
    ("E-RTMP ModEx with 16-bit size", "97" "ff" "0101" + "00" * 258 + "03" "61766331" "dd",
     1, "H264", K.CODED_FRAMES, 0, "dd"),
    ("E-RTMP metadata", "94" "61766331" "02", 1, "H264", K.IGNORED, 0, "02"),
    ("E-RTMP command frame", "d0" "00", 5, "video command", K.IGNORED, 0, ""),
    ("E-RTMP multitrack", "96" "00", 1, "multitrack video", K.CODED_FRAMES, 0, ""),
    ("E-RTMP unknown FourCC", "91" "78797a77" "000000", 1, "FourCC 'xyzw'", K.CODED_FRAMES, 0,
     "000000"),
]  # fmt: skip


@pytest.mark.parametrize(("case", "body", "frame", "codec", "kind", "cts", "data"), VIDEO_TABLE)
def test_video_tag(
    case: str, body: str, frame: int, codec: str, kind: PacketKind, cts: int, data: str
) -> None:
    tag = parse_video_tag(bytes.fromhex(body))
    assert (tag.frame_type, tag.codec, tag.kind, tag.composition_time_ms) == (
        frame, codec, kind, cts,
    ), case  # fmt: skip
    assert tag.data == bytes.fromhex(data)


@pytest.mark.parametrize(
    "body",
    ["", "17", "170000", "27010000", "90", "906876", "a1" "68766331" "00", "97", "9702", "97020000",
     "97ff00", "97" "00" "00"],
)  # fmt: skip
def test_truncated_video_tag(body: str) -> None:
    with pytest.raises(MediaError):
        parse_video_tag(bytes.fromhex(body))


# (case, body hex, codec, kind, data hex)
AUDIO_TABLE = [
    ("ffmpeg AAC sequence header", "af00" "121056e500", "AAC", K.SEQUENCE_HEADER, "121056e500"),
    ("AAC raw frame", "af01" "211004608c1c", "AAC", K.CODED_FRAMES, "211004608c1c"),
    ("AAC mono flags still AAC", "ae01" "21", "AAC", K.CODED_FRAMES, "21"),
    ("unknown AACPacketType", "af05", "AAC", K.IGNORED, ""),
    ("MP3", "2f" "fffb9064", "MP3", K.CODED_FRAMES, "fffb9064"),
    ("MP3 8 kHz", "e2" "ff", "MP3", K.CODED_FRAMES, "ff"),
    ("G.711 A-law", "72" "d5d5", "G.711 A-law", K.CODED_FRAMES, "d5d5"),
    ("Speex", "b2" "00", "Speex", K.CODED_FRAMES, "00"),
    ("Nellymoser", "62" "00", "Nellymoser", K.CODED_FRAMES, "00"),
    ("reserved 12", "c2" "00", "sound format 12", K.CODED_FRAMES, "00"),
    ("E-RTMP AAC sequence start", "90" "6d703461" "1210", "AAC", K.SEQUENCE_HEADER, "1210"),
    ("E-RTMP AAC coded frames", "91" "6d703461" "21", "AAC", K.CODED_FRAMES, "21"),
    ("E-RTMP Opus", "91" "4f707573" "fc", "Opus", K.CODED_FRAMES, "fc"),
    ("E-RTMP multichannel config", "94" "4f707573" "00", "Opus", K.IGNORED, "00"),
    ("E-RTMP multitrack audio", "95" "00", "multitrack audio", K.CODED_FRAMES, ""),
    ("E-RTMP ModEx then AAC", "97" "00" "00" "01" "6d703461" "21", "AAC", K.CODED_FRAMES, "21"),
]  # fmt: skip


@pytest.mark.parametrize(("case", "body", "codec", "kind", "data"), AUDIO_TABLE)
def test_audio_tag(case: str, body: str, codec: str, kind: PacketKind, data: str) -> None:
    tag = parse_audio_tag(bytes.fromhex(body))
    assert (tag.codec, tag.kind, tag.data) == (codec, kind, bytes.fromhex(data)), case


@pytest.mark.parametrize("body", ["", "af", "90", "906d70", "97", "9700"])
def test_truncated_audio_tag(body: str) -> None:
    with pytest.raises(MediaError):
        parse_audio_tag(bytes.fromhex(body))


def flv_file(tags: list[tuple[int, int, bytes]]) -> bytes:
    """A minimal FLV writer (E.2, E.3, E.4.1) for tests."""
    out = bytearray(b"FLV\x01\x05\x00\x00\x00\x09" + b"\x00" * 4)
    for tag_type, timestamp_ms, body in tags:
        header = (
            bytes((tag_type,)) + len(body).to_bytes(3, "big")
            + (timestamp_ms & 0xFFFFFF).to_bytes(3, "big") + bytes((timestamp_ms >> 24,))
            + b"\x00\x00\x00"
        )  # fmt: skip
        out += header + body + (len(header) + len(body)).to_bytes(4, "big")
    return bytes(out)


def test_flv_file_round_trip_with_extended_timestamps() -> None:
    tags = [(18, 0, b"\x02\x00\x0aonMetaData"), (9, 0, b"\x17\x00\x00\x00\x00"),
            (8, 23, b"\xaf\x01\x21"), (9, 0x01234567, b"\x27\x01\x00\x00\x00"),
            (8, 0xFFFFFFFF, b"")]  # fmt: skip
    assert list(iter_flv_tags(flv_file(tags))) == tags


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"FLX\x01\x05\x00\x00\x00\x09\x00\x00\x00\x00", "signature"),
        (b"FLV\x01", "short header"),
        (b"FLV\x01\x05\x00\x00\x00\x03\x00\x00\x00\x00", "data offset inside the header"),
        (flv_file([(9, 0, b"\x17" * 20)])[:-10], "truncated body"),
        (flv_file([(9, 0, b"\x17")])[:20], "truncated tag header"),
        (flv_file([(9 | 0x20, 0, b"\x17")]), "encrypted tag"),
    ],
)
def test_bad_flv_file(data: bytes, why: str) -> None:
    with pytest.raises(MediaError):
        list(iter_flv_tags(data))
