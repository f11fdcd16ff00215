"""Sans-IO demuxer: RTMP audio/video message payloads -> media events.

Timestamps come in already unwrapped (`timestamps.Unwrapper`), in ms. The RTMP message
timestamp is the DTS; video PTS = DTS + the signed composition time of the tag.
"""

from __future__ import annotations

from dataclasses import dataclass

from livechannel.media.aac import adts_header, adts_unsupported_reason, parse_audio_specific_config
from livechannel.media.flv import PacketKind, parse_audio_tag, parse_video_tag
from livechannel.media.frames import AudioConfig, AudioFrame, VideoConfig, VideoFrame
from livechannel.media.h264 import build_access_unit, parse_avc_decoder_config, split_avcc


@dataclass(frozen=True, slots=True)
class EndOfStream:
    """The publisher sent an AVC end-of-sequence (ffmpeg does at the end; OBS does not)."""


@dataclass(frozen=True, slots=True)
class UnsupportedVideo:
    """Video that is not H.264: the edge refuses the publish (seed 10.1: H.264 only)."""

    codec: str


@dataclass(frozen=True, slots=True)
class UnsupportedAudio:
    """Audio that is not (ADTS-compatible) AAC: reported once; the edge drops audio."""

    codec: str


MediaEvent = (
    VideoConfig | AudioConfig | VideoFrame | AudioFrame | EndOfStream | UnsupportedVideo
    | UnsupportedAudio
)  # fmt: skip


class Demuxer:
    """Tracks the current sequence headers and turns tag bodies into events.

    A repeated identical sequence header yields nothing, a changed one yields the new
    config. Frames that arrive before their config are dropped: they cannot be decoded.
    """

    __slots__ = ("_audio_config", "_audio_refused", "_video_config")

    def __init__(self) -> None:
        self._video_config: VideoConfig | None = None
        self._audio_config: AudioConfig | None = None
        self._audio_refused = False  # UnsupportedAudio already reported

    @property
    def video_config(self) -> VideoConfig | None:
        return self._video_config

    @property
    def audio_config(self) -> AudioConfig | None:
        return self._audio_config

    def video(self, timestamp_ms: int, payload: bytes) -> list[MediaEvent]:
        tag = parse_video_tag(payload)
        if tag.kind == PacketKind.IGNORED:
            return []
        if tag.codec != "H264":
            return [UnsupportedVideo(tag.codec)]
        if tag.kind == PacketKind.SEQUENCE_HEADER:
            if not tag.data:  # seen from encoders flushing at stop: nothing to configure
                return []
            config = parse_avc_decoder_config(tag.data)
            if config == self._video_config:
                return []
            self._video_config = config
            return [config]
        if tag.kind == PacketKind.END_OF_SEQUENCE:
            return [EndOfStream()]
        video_config = self._video_config
        if video_config is None:
            return []
        nals = split_avcc(tag.data, video_config.nal_length_size)
        if not nals:
            return []
        data, keyframe = build_access_unit(nals, video_config)
        pts_ms = timestamp_ms + tag.composition_time_ms
        return [VideoFrame(dts_ms=timestamp_ms, pts_ms=pts_ms, keyframe=keyframe, data=data)]

    def audio(self, timestamp_ms: int, payload: bytes) -> list[MediaEvent]:
        tag = parse_audio_tag(payload)
        if tag.codec != "AAC":
            return self._refuse_audio(tag.codec)
        if tag.kind == PacketKind.SEQUENCE_HEADER:
            if not tag.data:
                return []
            config = parse_audio_specific_config(tag.data)
            reason = adts_unsupported_reason(config)
            if reason is not None:
                self._audio_config = None
                return self._refuse_audio(reason)
            if config == self._audio_config:
                return []
            self._audio_config = config
            return [config]
        audio_config = self._audio_config
        if tag.kind != PacketKind.CODED_FRAMES or audio_config is None or not tag.data:
            return []
        header = adts_header(audio_config, len(tag.data))
        return [AudioFrame(pts_ms=timestamp_ms, data=header + tag.data)]

    def _refuse_audio(self, codec: str) -> list[MediaEvent]:
        if self._audio_refused:
            return []
        self._audio_refused = True
        return [UnsupportedAudio(codec)]
