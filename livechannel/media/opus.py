"""Opus from Enhanced RTMP (v2 audio FourCC `Opus`) for fMP4: the ID header the publisher
sends as SequenceStart (RFC 7845 5.1, "OpusHead", little-endian) becomes the fMP4 `dOps`
box (Encapsulation of Opus in ISO BMFF 4.3.2, big-endian), and each packet's duration comes
from its TOC byte (RFC 6716 3.1). Opus always runs at 48 kHz on the decoder side.
"""

from __future__ import annotations

import struct

from livechannel.media.errors import MediaError
from livechannel.media.frames import AudioConfig

OPUS_HEAD = b"OpusHead"
OPUS_HEAD_BYTES = 19  # magic, version, channels, pre-skip, rate, gain, mapping family
OPUS_RATE = 48_000
# RFC 6716 3.1: the frame size of each TOC configuration, in 48 kHz samples.
_SILK = (480, 960, 1920, 2880)
_HYBRID = (480, 960)
_CELT = (120, 240, 480, 960)
FRAME_SAMPLES = _SILK * 3 + _HYBRID * 2 + _CELT * 4
MAX_PACKET_SAMPLES = 5760  # 120 ms: the most one packet may hold (RFC 6716 3.2.5)


def parse_opus_head(data: bytes) -> AudioConfig:
    if len(data) < OPUS_HEAD_BYTES or data[:8] != OPUS_HEAD:
        raise MediaError("Opus sequence start is not an OpusHead")
    channels = data[9]
    if not channels:
        raise MediaError("OpusHead with no channels")
    return AudioConfig("Opus", 0, OPUS_RATE, channels, 0, bytes(data))


def dops_payload(config: AudioConfig) -> bytes:
    """The OpusSpecificBox body: OpusHead's fields after the magic, big-endian, version 0."""
    head = config.record
    channels, pre_skip, rate, gain, family = struct.unpack_from("<BHIhB", head, 9)
    out = struct.pack(">BBHIhB", 0, channels, pre_skip, rate, gain, family)
    if family:  # the channel mapping table follows as it is
        out += bytes(head[OPUS_HEAD_BYTES : OPUS_HEAD_BYTES + 2 + channels])
    return out


def packet_samples(packet: bytes) -> int:
    """48 kHz samples in one Opus packet (RFC 6716 3.1-3.2)."""
    if not packet:
        return 0
    toc = packet[0]
    per_frame = FRAME_SAMPLES[toc >> 3]
    code = toc & 0x03
    if code == 0:
        frames = 1
    elif code in (1, 2):
        frames = 2
    else:
        frames = packet[1] & 0x3F if len(packet) > 1 else 0
    return min(per_frame * frames, MAX_PACKET_SAMPLES)
