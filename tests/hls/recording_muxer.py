"""A muxer that records what the segmenter hands it, so tests see each segment's frames.

Each call returns a token `kind(1) | id(4) | pad length(4) | padding`; the padding is as long
as the frame's payload so byte limits behave like the real muxer's. `frames_of(data)` turns a
segment's bytes back into the exact calls that produced them, in order.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from livechannel.media.frames import AudioConfig, AudioFrame, VideoConfig, VideoFrame

_HEADER = struct.Struct(">cII")


@dataclass
class MuxLog:
    calls: list[tuple[str, object]] = field(default_factory=list)
    muxers: list[tuple[bool, bool, AudioConfig | None]] = field(default_factory=list)

    def factory(
        self,
        has_video: bool,
        has_audio: bool,
        audio_config: AudioConfig | None = None,
        *,
        video_config: VideoConfig | None = None,
    ) -> RecordingMuxer:
        self.muxers.append((has_video, has_audio, audio_config))
        return RecordingMuxer(self, len(self.muxers) - 1)

    def _token(self, kind: bytes, item: object, pad: int) -> bytes:
        self.calls.append((kind.decode(), item))
        return _HEADER.pack(kind, len(self.calls) - 1, pad) + bytes(pad)

    def frames_of(self, data: bytes) -> list[tuple[str, object]]:
        out = []
        offset = 0
        while offset < len(data):
            _, index, pad = _HEADER.unpack_from(data, offset)
            out.append(self.calls[index])
            offset += _HEADER.size + pad
        return out


@dataclass
class RecordingMuxer:
    log: MuxLog
    number: int  # index into log.muxers
    init_section: bytes | None = None
    buffered_bytes: int = 0

    def start_segment(self) -> bytes:
        return self.log._token(b"S", self.number, 0)

    def video(self, frame: VideoFrame) -> bytes:
        return self.log._token(b"V", frame, len(frame.data))

    def audio(self, frame: AudioFrame) -> bytes:
        return self.log._token(b"A", frame, len(frame.data))

    def end_fragment(self, next_video_dts_ms: int | None) -> list[bytes]:
        return []
