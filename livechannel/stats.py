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
FRAME_RATE_SAMPLES = 256  # frame times behind the frame rate: ~8 s at 30 fps, ~10 KB per push


class _Rate:
    """Bytes and counts in a sliding window of wall-clock time."""

    __slots__ = ("_bytes", "_samples")

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


class _MediaRate:
    """Bits per second of one track over its last WINDOW_MS of *media* time: right for an
    unpaced push or a publisher catching up, where wall-clock rates mean nothing."""

    __slots__ = ("_bytes", "_samples")

    def __init__(self) -> None:
        self._samples: deque[tuple[int, int]] = deque()
        self._bytes = 0

    def add(self, media_ms: int, size: int) -> None:
        samples = self._samples
        if samples and media_ms < samples[-1][0]:
            samples.clear()  # the publisher's clock went back: start over
            self._bytes = 0
        samples.append((media_ms, size))
        self._bytes += size
        while len(samples) > MAX_SAMPLES or samples[0][0] < media_ms - WINDOW_MS:
            self._bytes -= samples.popleft()[1]

    def bits_per_s(self) -> int:
        samples = self._samples
        if len(samples) < 2 or samples[-1][0] <= samples[0][0]:
            return 0
        # n samples span n - 1 intervals: leave the first one's bytes out.
        return (self._bytes - samples[0][1]) * 8000 // (samples[-1][0] - samples[0][0])


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
    _video_bits: _MediaRate = field(default_factory=_MediaRate, repr=False)
    _audio_bits: _MediaRate = field(default_factory=_MediaRate, repr=False)
    _frame_dts: deque[int] = field(
        default_factory=lambda: deque(maxlen=FRAME_RATE_SAMPLES), repr=False
    )
    _keyframe_intervals_ms: deque[int] = field(
        default_factory=lambda: deque(maxlen=KEYFRAME_HISTORY), repr=False
    )

    def on_video_frame(self, now_ms: int, dts_ms: int, size: int, keyframe: bool) -> None:
        self.frames += 1
        self._video_rate.add(now_ms, size)
        self._video_bits.add(dts_ms, size)
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

    def on_audio_frame(self, now_ms: int, size: int, pts_ms: int | None = None) -> None:
        self._audio_rate.add(now_ms, size)
        if pts_ms is not None:
            self._audio_bits.add(pts_ms, size)

    def frame_rate(self) -> float:
        """Frames per second of media time over the recent frames (not wall clock: a
        publisher catching up after a stall does not look like a faster camera)."""
        dts = self._frame_dts
        if len(dts) < 2 or dts[-1] <= dts[0]:
            return 0.0
        return (len(dts) - 1) * 1000 / (dts[-1] - dts[0])

    def bitrate_bps(self) -> int:
        """Video + audio bits per second of media time, over the recent WINDOW_MS."""
        return self._video_bits.bits_per_s() + self._audio_bits.bits_per_s()

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
                "bitrate_bps": self.bitrate_bps(),
                "video_bitrate_bps": self._video_bits.bits_per_s(),
                "audio_bitrate_bps": self._audio_bits.bits_per_s(),
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
