"""Live figures of one push: what GetLiveChannelStat shows and what operators watch.

Pure: frames are reported with `now_ms`; the figures are averages over a sliding window.
"""

from __future__ import annotations

import json
from collections import deque
from dataclasses import dataclass, field

from livechannel.media.frames import AudioConfig, VideoConfig

WINDOW_MS = 5_000  # "recent average" (seed 10.7): long enough to smooth GOP-sized bursts
MAX_SAMPLES = 4_096  # bounds memory: 5 s of 240 fps video + 48 kHz AAC frames fits easily
KEYFRAME_HISTORY = 8  # keyframe intervals kept to report a stable recent interval


class _Rate:
    """Bytes and counts in a sliding window of wall-clock time."""

    __slots__ = ("_samples", "_bytes")

    def __init__(self) -> None:
        self._samples: deque[tuple[int, int]] = deque(maxlen=MAX_SAMPLES)
        self._bytes = 0

    def add(self, now_ms: int, size: int) -> None:
        if len(self._samples) == self._samples.maxlen:
            self._bytes -= self._samples[0][1]
        self._samples.append((now_ms, size))
        self._bytes += size
        self._expire(now_ms)

    def _expire(self, now_ms: int) -> None:
        while self._samples and self._samples[0][0] < now_ms - WINDOW_MS:
            self._bytes -= self._samples.popleft()[1]

    def bytes_per_s(self, now_ms: int) -> int:
        self._expire(now_ms)
        if len(self._samples) < 2:
            return 0
        span_ms = max(now_ms - self._samples[0][0], 1_000)
        return self._bytes * 1000 // span_ms


@dataclass(slots=True)
class PushStats:
    video: VideoConfig | None = None
    audio: AudioConfig | None = None
    frames: int = 0
    keyframes: int = 0
    segments: int = 0
    last_keyframe_dts_ms: int | None = None
    storage_error: str = ""
    # Segments (and their bytes) waiting for storage now, and the most ever: what a storage
    # outage costs in memory, bounded by Limits.upload_queue_segments.
    upload_queue: int = 0
    upload_queue_bytes: int = 0
    upload_queue_peak: int = 0
    upload_queue_peak_bytes: int = 0
    _video_rate: _Rate = field(default_factory=_Rate, repr=False)
    _audio_rate: _Rate = field(default_factory=_Rate, repr=False)
    _frame_dts: deque[int] = field(default_factory=lambda: deque(maxlen=MAX_SAMPLES), repr=False)
    _keyframe_intervals_ms: deque[int] = field(
        default_factory=lambda: deque(maxlen=KEYFRAME_HISTORY), repr=False
    )

    def on_video_frame(self, now_ms: int, dts_ms: int, size: int, keyframe: bool) -> None:
        self.frames += 1
        self._video_rate.add(now_ms, size)
        self._frame_dts.append(dts_ms)
        if keyframe:
            self.keyframes += 1
            if self.last_keyframe_dts_ms is not None and dts_ms > self.last_keyframe_dts_ms:
                self._keyframe_intervals_ms.append(dts_ms - self.last_keyframe_dts_ms)
            self.last_keyframe_dts_ms = dts_ms

    def on_upload_queue(self, segments: int, size: int) -> None:
        self.upload_queue, self.upload_queue_bytes = segments, size
        self.upload_queue_peak = max(self.upload_queue_peak, segments)
        self.upload_queue_peak_bytes = max(self.upload_queue_peak_bytes, size)

    def on_audio_frame(self, now_ms: int, size: int) -> None:
        self._audio_rate.add(now_ms, size)

    def frame_rate(self) -> float:
        """Frames per second of media time over the recent frames (not wall clock: a
        publisher catching up after a stall does not look like a faster camera)."""
        dts = list(self._frame_dts)[-256:]
        if len(dts) < 2 or dts[-1] <= dts[0]:
            return 0.0
        return (len(dts) - 1) * 1000 / (dts[-1] - dts[0])

    def keyframe_interval_ms(self) -> int | None:
        if not self._keyframe_intervals_ms:
            return None
        return max(self._keyframe_intervals_ms)

    def to_dict(self, now_ms: int) -> dict[str, object]:
        video = None
        if self.video is not None:
            video = {
                "width": self.video.width,
                "height": self.video.height,
                "frame_rate": round(self.frame_rate()),
                "bandwidth": self._video_rate.bytes_per_s(now_ms),
                "codec": self.video.codec,
            }
        audio = None
        if self.audio is not None:
            audio = {
                "sample_rate": self.audio.sample_rate,
                "bandwidth": self._audio_rate.bytes_per_s(now_ms),
                "codec": self.audio.codec,
            }
        return {
            "video": video,
            "audio": audio,
            "health": {
                "frames": self.frames,
                "keyframes": self.keyframes,
                "keyframe_interval_ms": self.keyframe_interval_ms(),
                "frame_rate": round(self.frame_rate(), 2),
                "segments": self.segments,
                "storage_error": self.storage_error,
                "upload_queue": self.upload_queue,
                "upload_queue_bytes": self.upload_queue_bytes,
                "upload_queue_peak": self.upload_queue_peak,
                "upload_queue_peak_bytes": self.upload_queue_peak_bytes,
            },
        }

    def to_json(self, now_ms: int) -> str:
        return json.dumps(self.to_dict(now_ms), separators=(",", ":"))
