"""Access units: what the FLV layer hands to the segmenter. Times are integer milliseconds
on the publisher's clock, already unwrapped to 64 bits (see `media/timestamps.py`)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class VideoConfig:
    """From the AVC sequence header (AVCDecoderConfigurationRecord) and its first SPS."""

    codec: str  # "H264"
    width: int
    height: int
    nal_length_size: int
    sps: tuple[bytes, ...]
    pps: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class AudioConfig:
    """From the AAC sequence header (AudioSpecificConfig)."""

    codec: str  # "AAC"
    object_type: int
    sample_rate: int
    channels: int
    sampling_index: int


@dataclass(frozen=True, slots=True)
class VideoFrame:
    """One H.264 access unit in Annex B form (start codes), ready for PES.

    Keyframes (IDR) carry SPS/PPS in-band so every segment decodes on its own.
    """

    dts_ms: int
    pts_ms: int  # dts_ms + signed composition time
    keyframe: bool
    data: bytes


@dataclass(frozen=True, slots=True)
class AudioFrame:
    """One AAC frame with its ADTS header."""

    pts_ms: int
    data: bytes
