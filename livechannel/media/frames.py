"""Access units: what the FLV layer hands to the segmenter. Times are integer milliseconds
on the publisher's clock, already unwrapped to 64 bits (see `media/timestamps.py`)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class VideoConfig:
    """From the video sequence header: for H.264 the AVCDecoderConfigurationRecord and its
    first SPS; for the Enhanced RTMP codecs their MP4 configuration record as it came."""

    codec: str  # "H264", "HEVC", "AV1", "VP9"
    width: int
    height: int
    nal_length_size: int
    sps: tuple[bytes, ...]
    pps: tuple[bytes, ...]
    # HEVC: HEVCDecoderConfigurationRecord (hvcC), AV1: AV1CodecConfigurationRecord (av1C),
    # VP9: VPCodecConfigurationRecord (vpcC body); empty for H.264 (rebuilt from sps/pps).
    record: bytes = b""


@dataclass(frozen=True, slots=True)
class AudioConfig:
    """From the AAC sequence header (AudioSpecificConfig), or the Opus one (OpusHead)."""

    codec: str  # "AAC" or "Opus" (Enhanced RTMP, fMP4 only)
    object_type: int
    sample_rate: int
    channels: int
    sampling_index: int
    record: bytes = b""  # Opus: the OpusHead as sent


# The frames are made once per RTMP message, so they are plain slotted dataclasses, not frozen
# ones: a frozen dataclass's __init__ sets each field through object.__setattr__, which made
# a frame cost 3.4x as much to build (docs/performance.md). Nothing changes a frame once
# made: the segmenter's fixes make a new one (dataclasses.replace).
@dataclass(slots=True)
class VideoFrame:
    """One H.264 access unit in Annex B form (start codes), ready for PES; keyframes (IDR)
    carry SPS/PPS in-band so every segment decodes on its own. For the Enhanced RTMP codecs
    (HEVC, AV1, VP9; fMP4 only) the sample in its MP4 form, as the publisher sent it.
    """

    dts_ms: int
    pts_ms: int  # dts_ms + signed composition time
    keyframe: bool
    data: bytes


@dataclass(slots=True)
class AudioFrame:
    """One AAC frame with its ADTS header."""

    pts_ms: int
    data: bytes
