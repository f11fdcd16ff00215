"""FLV tag bodies (= RTMP audio/video message payloads) and FLV files.

Legacy layout: Adobe FLV spec v10.1, E.4.2.1 AUDIODATA and E.4.3.1 VIDEODATA. Enhanced RTMP
(veovera enhanced-rtmp v1/v2): a set high bit in the first video byte, or SoundFormat 9,
means a FourCC names the codec. H.264 and AAC are carried through in both layouts, and the
Enhanced RTMP video codecs HEVC (`hvc1`), AV1 (`av01`) and VP9 (`vp09`) into fMP4
(`demux.py`); everything else is parsed far enough to be named and reported as unsupported.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from enum import IntEnum

from livechannel.media.errors import MediaError


class PacketKind(IntEnum):
    """What a tag body carries, normalised over the legacy and enhanced layouts."""

    SEQUENCE_HEADER = 0  # decoder configuration (avcC / AudioSpecificConfig)
    CODED_FRAMES = 1
    END_OF_SEQUENCE = 2
    IGNORED = 3  # video command frames, metadata, multichannel config, ...


@dataclass(frozen=True, slots=True)
class VideoTag:
    frame_type: int  # 1 key, 2 inter, 3 disposable, 4 generated key, 5 command (E.4.3.1)
    codec: str  # "H264" for AVC, else a readable name for the refusal message
    kind: PacketKind
    composition_time_ms: int  # signed: pts - dts
    data: bytes


@dataclass(frozen=True, slots=True)
class AudioTag:
    codec: str  # "AAC", else a readable name
    kind: PacketKind
    data: bytes


VIDEO_CODEC_AVC = 7
FRAME_TYPE_KEY = 1
FRAME_TYPE_COMMAND = 5
# CodecID (E.4.3.1); 12 and 13 are the widespread non-Adobe HEVC/AV1 extensions.
VIDEO_CODECS = {
    2: "Sorenson H.263", 3: "Screen video", 4: "VP6", 5: "VP6 alpha", 6: "Screen video v2",
    7: "H264", 12: "HEVC", 13: "AV1",
}  # fmt: skip
VIDEO_FOURCCS = {b"avc1": "H264", b"hvc1": "HEVC", b"av01": "AV1", b"vp09": "VP9", b"vp08": "VP8"}
# Enhanced video/audio PacketType values (enhanced-rtmp v2).
EX_SEQUENCE_START, EX_CODED_FRAMES, EX_SEQUENCE_END, EX_CODED_FRAMES_X = 0, 1, 2, 3
EX_METADATA, EX_MULTITRACK, EX_MOD_EX = 4, 6, 7
EX_AUDIO_MULTITRACK = 5

SOUND_FORMAT_AAC = 10
SOUND_FORMAT_EX_HEADER = 9  # enhanced-rtmp: a FourCC follows
SOUND_FORMATS = {
    0: "PCM", 1: "ADPCM", 2: "MP3", 3: "PCM", 4: "Nellymoser", 5: "Nellymoser", 6: "Nellymoser",
    7: "G.711 A-law", 8: "G.711 mu-law", 10: "AAC", 11: "Speex", 14: "MP3", 15: "device-specific",
}  # fmt: skip
AUDIO_FOURCCS = {b"mp4a": "AAC", b"Opus": "Opus", b".mp3": "MP3", b"fLaC": "FLAC",
                 b"ac-3": "AC-3", b"ec-3": "E-AC-3"}  # fmt: skip
AAC_KINDS = {0: PacketKind.SEQUENCE_HEADER, 1: PacketKind.CODED_FRAMES}
AVC_KINDS = {
    0: PacketKind.SEQUENCE_HEADER,
    1: PacketKind.CODED_FRAMES,
    2: PacketKind.END_OF_SEQUENCE,
}


def _fourcc_name(fourcc: bytes, names: dict[bytes, str]) -> str:
    return names.get(fourcc) or f"FourCC {fourcc.decode('latin-1')!r}"


def _skip_mod_ex(body: bytes, pos: int) -> tuple[int, int]:
    """Skip ModEx blocks (enhanced-rtmp v2); returns (real packet type, position)."""
    packet_type = EX_MOD_EX
    while packet_type == EX_MOD_EX:
        if pos >= len(body):
            raise MediaError("ModEx block truncated")
        size = body[pos] + 1
        pos += 1
        if size == 256:
            if pos + 2 > len(body):
                raise MediaError("ModEx block truncated")
            size = int.from_bytes(body[pos : pos + 2], "big") + 1
            pos += 2
        pos += size
        if pos >= len(body):
            raise MediaError("ModEx block truncated")
        packet_type = body[pos] & 0x0F  # high nibble: modExType, which we do not need
        pos += 1
    return packet_type, pos


def video_frame_type(first_byte: int) -> int:
    """FrameType of a video tag from its first byte: bits 4-6 in the FLV VideoTagHeader and in
    Enhanced RTMP's ExVideoTagHeader alike (bit 7 is IsExHeader there, 0 in FLV)."""
    return (first_byte >> 4) & 0x07


def parse_video_tag(body: bytes) -> VideoTag:
    if not body:
        raise MediaError("empty video message")
    first = body[0]
    if first & 0x80:
        return _parse_ex_video(body)
    frame_type, codec_id = video_frame_type(first), first & 0x0F
    codec = VIDEO_CODECS.get(codec_id, f"video codec id {codec_id}")
    if frame_type == FRAME_TYPE_COMMAND:
        return VideoTag(frame_type, codec, PacketKind.IGNORED, 0, b"")
    if codec_id != VIDEO_CODEC_AVC:
        return VideoTag(frame_type, codec, PacketKind.CODED_FRAMES, 0, bytes(body[1:]))
    if len(body) < 5:
        raise MediaError(f"AVC video message of {len(body)} bytes is truncated")
    kind = AVC_KINDS.get(body[1], PacketKind.IGNORED)
    cts_ms = int.from_bytes(body[2:5], "big", signed=True)  # SI24 CompositionTime
    return VideoTag(frame_type, codec, kind, cts_ms, bytes(body[5:]))


def _parse_ex_video(body: bytes) -> VideoTag:
    frame_type, packet_type = video_frame_type(body[0]), body[0] & 0x0F
    packet_type, pos = _skip_mod_ex(body, 1) if packet_type == EX_MOD_EX else (packet_type, 1)
    if frame_type == FRAME_TYPE_COMMAND and packet_type != EX_METADATA:
        return VideoTag(frame_type, "video command", PacketKind.IGNORED, 0, b"")
    if packet_type == EX_MULTITRACK:
        return VideoTag(frame_type, "multitrack video", PacketKind.CODED_FRAMES, 0, b"")
    if pos + 4 > len(body):
        raise MediaError("enhanced video message truncated in its FourCC")
    codec = _fourcc_name(bytes(body[pos : pos + 4]), VIDEO_FOURCCS)
    pos += 4
    cts_ms = 0
    if packet_type == EX_SEQUENCE_START:
        kind = PacketKind.SEQUENCE_HEADER
    elif packet_type == EX_SEQUENCE_END:
        kind = PacketKind.END_OF_SEQUENCE
    elif packet_type == EX_CODED_FRAMES_X:
        kind = PacketKind.CODED_FRAMES
    elif packet_type == EX_CODED_FRAMES:
        kind = PacketKind.CODED_FRAMES
        if codec in ("H264", "HEVC"):  # only these carry a CompositionTime here
            if pos + 3 > len(body):
                raise MediaError("enhanced video message truncated in its composition time")
            cts_ms = int.from_bytes(body[pos : pos + 3], "big", signed=True)
            pos += 3
    else:
        kind = PacketKind.IGNORED
    return VideoTag(frame_type, codec, kind, cts_ms, bytes(body[pos:]))


def parse_audio_tag(body: bytes) -> AudioTag:
    if not body:
        raise MediaError("empty audio message")
    sound_format = body[0] >> 4
    if sound_format == SOUND_FORMAT_EX_HEADER:
        return _parse_ex_audio(body)
    codec = SOUND_FORMATS.get(sound_format, f"sound format {sound_format}")
    if sound_format != SOUND_FORMAT_AAC:
        return AudioTag(codec, PacketKind.CODED_FRAMES, bytes(body[1:]))
    if len(body) < 2:
        raise MediaError("AAC audio message truncated before its AACPacketType")
    return AudioTag(codec, AAC_KINDS.get(body[1], PacketKind.IGNORED), bytes(body[2:]))


def _parse_ex_audio(body: bytes) -> AudioTag:
    packet_type = body[0] & 0x0F
    packet_type, pos = _skip_mod_ex(body, 1) if packet_type == EX_MOD_EX else (packet_type, 1)
    if packet_type == EX_AUDIO_MULTITRACK:
        return AudioTag("multitrack audio", PacketKind.CODED_FRAMES, b"")
    if pos + 4 > len(body):
        raise MediaError("enhanced audio message truncated in its FourCC")
    codec = _fourcc_name(bytes(body[pos : pos + 4]), AUDIO_FOURCCS)
    kind = {
        EX_SEQUENCE_START: PacketKind.SEQUENCE_HEADER,
        EX_CODED_FRAMES: PacketKind.CODED_FRAMES,
        EX_SEQUENCE_END: PacketKind.END_OF_SEQUENCE,
    }.get(packet_type, PacketKind.IGNORED)
    return AudioTag(codec, kind, bytes(body[pos + 4 :]))


# --- FLV files (E.2, E.3): fixtures and benchmark inputs -----------------------------------

FLV_SIGNATURE = b"FLV"
FLV_HEADER_BYTES = 9  # signature, version, flags, DataOffset (E.2)
TAG_HEADER_BYTES = 11  # TagType, DataSize, Timestamp, TimestampExtended, StreamID (E.4.1)
PREVIOUS_TAG_SIZE_BYTES = 4
TAG_TYPE_AUDIO, TAG_TYPE_VIDEO, TAG_TYPE_SCRIPT = 8, 9, 18
TAG_FILTER_BIT = 0x20  # set means an encrypted body, which we cannot read


def iter_flv_tags(data: bytes) -> Iterator[tuple[int, int, bytes]]:
    """Yield (tag_type, timestamp_ms, body) for each tag of an FLV file."""
    if len(data) < FLV_HEADER_BYTES or data[:3] != FLV_SIGNATURE:
        raise MediaError("not an FLV file")
    pos = int.from_bytes(data[5:9], "big")
    if pos < FLV_HEADER_BYTES:
        raise MediaError(f"FLV DataOffset {pos} is inside the header")
    pos += PREVIOUS_TAG_SIZE_BYTES  # PreviousTagSize0
    end = len(data)
    while pos < end:
        if pos + TAG_HEADER_BYTES > end:
            raise MediaError("FLV tag header truncated")
        header = data[pos : pos + TAG_HEADER_BYTES]
        if header[0] & TAG_FILTER_BIT:
            raise MediaError("encrypted (filtered) FLV tag")
        size = int.from_bytes(header[1:4], "big")
        # 24 low bits, then TimestampExtended holds bits 31..24 (E.4.1).
        timestamp_ms = (header[7] << 24) | int.from_bytes(header[4:7], "big")
        body_start = pos + TAG_HEADER_BYTES
        if body_start + size > end:
            raise MediaError(f"FLV tag body of {size} bytes truncated")
        yield header[0] & 0x1F, timestamp_ms, bytes(data[body_start : body_start + size])
        pos = body_start + size + PREVIOUS_TAG_SIZE_BYTES
