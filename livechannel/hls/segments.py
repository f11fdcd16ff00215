"""What the segmenter hands out (closed segments, LL-HLS parts, why a segment was cut) and
what it needs of a muxer; the rules that produce them are segmenter.py's."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Protocol

from livechannel.media.frames import AudioConfig, AudioFrame, VideoConfig, VideoFrame


class CutReason(Enum):
    """Why a segment was closed."""

    KEYFRAME = "keyframe"  # FragDuration reached and a keyframe arrived
    FORCED = "forced"  # max_segment_ms reached without a keyframe
    DISCONTINUITY = "discontinuity"  # timestamps jumped
    TRACKS = "tracks"  # a track (audio) joined: new PMT
    CONFIG = "config"  # VideoConfig/AudioConfig changed
    SIZE = "size"  # max_segment_bytes reached
    END = "end"  # flush or end of stream


@dataclass(frozen=True, slots=True)
class SegmentReady:
    # A complete segment (TS: starting with PAT/PMT; fMP4: moof + mdat) as the muxer's pieces,
    # less what `Segmenter.take_open` handed out while it was open: storage writes them as
    # they are, so the segment is never copied into one buffer here.
    chunks: list[bytes]
    size: int  # bytes in the whole segment (taken or not)
    first_dts_ms: int  # publisher clock
    duration_ms: int  # next segment's first DTS - this one's (estimated when unknown)
    arrival_ms: int  # now_ms when its first frame arrived (wall clock for naming/indexing)
    discontinuity: bool  # EXT-X-DISCONTINUITY before it
    reason: CutReason  # why it was closed
    init: bytes | None = None  # fMP4: the init section (EXT-X-MAP) this segment needs

    @property
    def data(self) -> bytes:
        return b"".join(self.chunks)


@dataclass(frozen=True, slots=True)
class PartReady:
    """A complete LL-HLS partial segment: one fragment of the open segment."""

    chunks: list[bytes]  # shared with the segment's chunks, never copied
    size: int
    index: int  # 0 for a segment's first part
    first_dts_ms: int
    duration_ms: int
    independent: bool  # starts with a keyframe (EXT-X-PART INDEPENDENT=YES)
    segment_arrival_ms: int  # its segment's `arrival_ms` (which segment it belongs to)
    discontinuity: bool  # its segment's
    init: bytes | None  # its segment's init section


class SegmentMuxer(Protocol):
    # fMP4: the init section every segment of this muxer needs; TS: None (self-contained).
    init_section: bytes | None
    # Media bytes held inside the muxer until `end_fragment` (fMP4), counted for SIZE cuts.
    buffered_bytes: int

    def start_segment(self) -> bytes: ...
    def video(self, frame: VideoFrame) -> bytes: ...
    def audio(self, frame: AudioFrame) -> bytes: ...
    def end_fragment(self, next_video_dts_ms: int | None) -> list[bytes]: ...


class MuxerFactory(Protocol):
    """(has_video, has_audio, audio_config, video_config=) -> muxer: TsMuxer or Fmp4Muxer,
    or a test's recording muxer."""

    def __call__(
        self,
        has_video: bool,
        has_audio: bool,
        audio_config: AudioConfig | None = None,
        *,
        video_config: VideoConfig | None = None,
    ) -> SegmentMuxer: ...
