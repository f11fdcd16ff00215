"""Sans-IO demuxer: RTMP audio/video message payloads -> media events.

Timestamps come in already unwrapped (`timestamps.Unwrapper`), in ms. The RTMP message
timestamp is the DTS; video PTS = DTS + the signed composition time of the tag.

Enhanced RTMP video (a FourCC in an ExVideoTagHeader: `hvc1`, `av01`, `vp09`) arrives as
its MP4 configuration record (SequenceStart) and MP4-form samples (CodedFrames,
CodedFramesX), which are passed through as they are: only fMP4 segments carry them.
"""

from __future__ import annotations

from dataclasses import dataclass

from livechannel.media.aac import (
    MAX_ADTS_PAYLOAD_BYTES,
    AdtsFramer,
    adts_header,
    adts_unsupported_reason,
    parse_audio_specific_config,
)
from livechannel.media.av1 import parse_av1_config
from livechannel.media.flv import (
    FRAME_TYPE_COMMAND,
    FRAME_TYPE_KEY,
    SOUND_FORMAT_AAC,
    VIDEO_CODEC_AVC,
    AudioTag,
    PacketKind,
    VideoTag,
    parse_audio_tag,
    parse_video_tag,
)
from livechannel.media.frames import AudioConfig, AudioFrame, VideoConfig, VideoFrame
from livechannel.media.h264 import avcc_access_unit, parse_avc_decoder_config
from livechannel.media.hevc import is_irap, parse_hevc_decoder_config
from livechannel.media.opus import parse_opus_head


@dataclass(frozen=True, slots=True)
class EndOfStream:
    """The publisher sent an AVC end-of-sequence (ffmpeg does at the end; OBS does not)."""


@dataclass(frozen=True, slots=True)
class UnsupportedVideo:
    """Video that is not H.264: the edge refuses the publish (H.264 only: OSS API reference,
    LiveChannel overview)."""

    codec: str


@dataclass(frozen=True, slots=True)
class UnsupportedAudio:
    """Audio that is not (ADTS-compatible) AAC: reported once; the edge drops audio."""

    codec: str


MediaEvent = (
    VideoConfig | AudioConfig | VideoFrame | AudioFrame | EndOfStream | UnsupportedVideo
    | UnsupportedAudio
)  # fmt: skip

# Fast-path tests on the first byte of a tag body (FLV spec E.4.3.1 / E.4.2.1).
_LEGACY_AVC_MASK = 0x8F  # bit 7 clear (not enhanced RTMP) and CodecID in the low nibble
_EX_HEADER = 0x80  # IsExHeader (Enhanced RTMP, ExVideoTagHeader)
ENHANCED_VIDEO_CODECS = frozenset({"HEVC", "AV1", "VP9"})  # carried into fMP4 as they come
AVC_PACKET_NALU = 1  # AVCPacketType 1: coded frames
AAC_PACKET_RAW = 1  # AACPacketType 1: a raw frame


class Demuxer:
    """Tracks the current sequence headers and turns tag bodies into events.

    A repeated identical sequence header yields nothing, a changed one yields the new
    config. Frames that arrive before their config are dropped: they cannot be decoded.
    """

    __slots__ = ("_adts", "_audio_config", "_audio_refused", "_video_config", "enhanced_audio")

    def __init__(self, *, enhanced_audio: bool = False) -> None:
        # Opus (Enhanced RTMP audio) is taken only where it can be carried: into fMP4. For
        # MPEG-TS it stays "unsupported audio" (dropped, the video goes on).
        self.enhanced_audio = enhanced_audio
        self._video_config: VideoConfig | None = None
        self._audio_config: AudioConfig | None = None
        self._adts: AdtsFramer | None = None  # for _audio_config
        self._audio_refused = False  # UnsupportedAudio already reported

    @property
    def video_config(self) -> VideoConfig | None:
        return self._video_config

    @property
    def audio_config(self) -> AudioConfig | None:
        return self._audio_config

    def video(self, timestamp_ms: int, payload: bytes) -> list[MediaEvent]:
        config = self._video_config
        # Fast path, same result as `_video` (which tests compare it with): an AVC NALU
        # message in the legacy layout once configured, i.e. nearly every video message.
        if (
            config is not None
            and len(payload) >= 5
            and payload[0] & _LEGACY_AVC_MASK == VIDEO_CODEC_AVC
            and payload[0] >> 4 != FRAME_TYPE_COMMAND
            and payload[1] == AVC_PACKET_NALU
        ):
            data, keyframe = avcc_access_unit(  # NAL units as views: no copy but the AU's
                memoryview(payload), config.nal_length_size, config, start=5
            )
            if not data:
                return []
            pts_ms = timestamp_ms + int.from_bytes(payload[2:5], "big", signed=True)
            return [VideoFrame(timestamp_ms, pts_ms, keyframe, data)]
        return self._video(timestamp_ms, payload)

    def _video(self, timestamp_ms: int, payload: bytes) -> list[MediaEvent]:
        tag = parse_video_tag(payload)
        if tag.kind == PacketKind.IGNORED:
            return []
        if tag.codec in ENHANCED_VIDEO_CODECS and payload[0] & _EX_HEADER:
            return self._enhanced_video(timestamp_ms, tag)
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
        data, keyframe = avcc_access_unit(tag.data, video_config.nal_length_size, video_config)
        if not data:
            return []
        pts_ms = timestamp_ms + tag.composition_time_ms
        return [VideoFrame(dts_ms=timestamp_ms, pts_ms=pts_ms, keyframe=keyframe, data=data)]

    def _enhanced_video(self, timestamp_ms: int, tag: VideoTag) -> list[MediaEvent]:
        if tag.kind == PacketKind.SEQUENCE_HEADER:
            if not tag.data:
                return []
            if tag.codec == "HEVC":
                config = parse_hevc_decoder_config(tag.data)
            elif tag.codec == "AV1":
                config = parse_av1_config(tag.data)
            else:  # VP9: vpcC says nothing of the picture size; decoders read the frames
                config = VideoConfig("VP9", 0, 0, 0, (), (), bytes(tag.data))
            if config == self._video_config:
                return []
            self._video_config = config
            return [config]
        if tag.kind == PacketKind.END_OF_SEQUENCE:
            return [EndOfStream()]
        current = self._video_config
        if current is None or current.codec != tag.codec or not tag.data:
            return []  # no decoder configuration yet (or for another codec): undecodable
        if tag.codec == "HEVC":
            keyframe = is_irap(tag.data, current.nal_length_size)
        else:  # AV1/VP9: the publisher's frame type (a key frame with its sequence header)
            keyframe = tag.frame_type == FRAME_TYPE_KEY
        pts_ms = timestamp_ms + tag.composition_time_ms
        return [VideoFrame(timestamp_ms, pts_ms, keyframe, bytes(tag.data))]

    def audio(self, timestamp_ms: int, payload: bytes) -> list[MediaEvent]:
        adts = self._adts
        # Fast path, same result as `_audio`: a raw AAC frame once configured.
        if (
            adts is not None
            and 2 < len(payload) <= MAX_ADTS_PAYLOAD_BYTES + 2
            and payload[0] >> 4 == SOUND_FORMAT_AAC
            and payload[1] == AAC_PACKET_RAW
        ):
            # A slice of a few hundred bytes costs less than a memoryview (an object with a
            # buffer export to set up and release) and its slice.
            return [AudioFrame(timestamp_ms, adts.frame(payload[2:]))]
        return self._audio(timestamp_ms, payload)

    def _audio(self, timestamp_ms: int, payload: bytes) -> list[MediaEvent]:
        tag = parse_audio_tag(payload)
        if tag.codec == "Opus" and self.enhanced_audio:
            return self._opus(timestamp_ms, tag)
        if tag.codec != "AAC":
            return self._refuse_audio(tag.codec)
        if tag.kind == PacketKind.SEQUENCE_HEADER:
            if not tag.data:
                return []
            config = parse_audio_specific_config(tag.data)
            reason = adts_unsupported_reason(config)
            if reason is not None:
                self._audio_config = self._adts = None
                return self._refuse_audio(reason)
            if config == self._audio_config:
                return []
            self._audio_config = config
            self._adts = AdtsFramer(config)
            return [config]
        audio_config = self._audio_config
        if tag.kind != PacketKind.CODED_FRAMES or audio_config is None or not tag.data:
            return []
        header = adts_header(audio_config, len(tag.data))
        return [AudioFrame(pts_ms=timestamp_ms, data=header + tag.data)]

    def _opus(self, timestamp_ms: int, tag: AudioTag) -> list[MediaEvent]:
        """Enhanced RTMP Opus, passed through as raw packets (fMP4 only)."""
        if tag.kind == PacketKind.SEQUENCE_HEADER:
            if not tag.data:
                return []
            config = parse_opus_head(tag.data)
            if config == self._audio_config:
                return []
            self._audio_config, self._adts = config, None
            return [config]
        current = self._audio_config
        if tag.kind != PacketKind.CODED_FRAMES or current is None or current.codec != "Opus":
            return []
        return [AudioFrame(timestamp_ms, bytes(tag.data))] if tag.data else []

    def _refuse_audio(self, codec: str) -> list[MediaEvent]:
        if self._audio_refused:
            return []
        self._audio_refused = True
        return [UnsupportedAudio(codec)]
