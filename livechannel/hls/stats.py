"""Live figures of one push: what GetLiveChannelStat shows and what operators watch.

Pure: frames are reported with `now_ms`; the figures are averages over a sliding window.
"""

from __future__ import annotations

import json
from collections import deque
from dataclasses import dataclass, field

from livechannel.media.codecs import audio_codec_string, video_codec_string
from livechannel.media.frames import AudioConfig, VideoConfig

# "Recent average" (OSS API reference, GetLiveChannelStat): long enough to smooth GOP bursts.
WINDOW_MS = 5_000
MARK_MS = 200  # one mark per 200 ms of media: rates are exact to the frame at that grain
KEYFRAME_HISTORY = 8  # keyframe intervals kept to report a stable recent interval


class _Track:
    """Running totals of one track, with a mark every MARK_MS of media time.

    A frame costs two additions and one comparison; the rates are worked out from the marks
    when the figures are read (once a second), not kept up to date per frame. Rates over
    *media* time are right for an unpaced push or a publisher catching up, where wall-clock
    rates mean nothing; the wall-clock rate is what GetLiveChannelStat reports as bandwidth.
    """

    __slots__ = ("_last_ms", "_marks", "_next_mark_ms", "bytes", "frames")

    def __init__(self) -> None:
        self.bytes = 0
        self.frames = 0
        self._last_ms = -(2**62)  # media time of the latest frame
        self._next_mark_ms = self._last_ms
        # (media ms, wall ms, bytes, frames) just after a frame; at most
        # WINDOW_MS / MARK_MS + 2 of them (~27): memory does not grow with the push.
        self._marks: deque[tuple[int, int, int, int]] = deque()

    def add(self, now_ms: int, media_ms: int, size: int) -> None:
        self.bytes += size
        self.frames += 1
        if self._last_ms <= media_ms < self._next_mark_ms:
            self._last_ms = media_ms
            return
        marks = self._marks
        if media_ms < self._last_ms:
            marks.clear()  # the publisher's clock went back: start over
        self._last_ms = media_ms
        self._next_mark_ms = media_ms + MARK_MS
        marks.append((media_ms, now_ms, self.bytes, self.frames))
        while marks[0][0] < media_ms - WINDOW_MS:
            marks.popleft()

    def media_rate(self) -> tuple[int, float]:
        """(bits per second, frames per second) over the recent WINDOW_MS of media time: the
        frames after the oldest mark, over the media time since it."""
        if not self._marks:
            return 0, 0.0
        media_ms, _, size, frames = self._marks[0]
        span_ms = self._last_ms - media_ms
        if span_ms <= 0:
            return 0, 0.0
        return (self.bytes - size) * 8000 // span_ms, (self.frames - frames) * 1000 / span_ms

    def bytes_per_s(self, now_ms: int) -> int:
        """Bytes per second of wall-clock time over the recent WINDOW_MS (0 once idle)."""
        oldest = next((m for m in self._marks if m[1] >= now_ms - WINDOW_MS), None)
        if oldest is None:
            return 0
        return (self.bytes - oldest[2]) * 1000 // max(now_ms - oldest[1], 1_000)


@dataclass(slots=True)
class PushStats:
    video: VideoConfig | None = None
    audio: AudioConfig | None = None
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
    snapshots: int = 0  # JPEGs stored (channel Snapshot config)
    snapshots_skipped: int = 0  # due but not taken: encoders busy, undecodable, or not stored
    # Counted by the segmenter (hls.segmenter), which shares this object with the pipeline:
    forced_cuts: int = 0  # segments cut without a keyframe: the keyframe interval is too long
    dropped_video: int = 0  # frames no segment could take (before a keyframe, a new SPS)
    dropped_audio: int = 0  # before the first keyframe, off the timeline, or a restarted clock
    fixed_timestamps: int = 0  # duplicate or slightly earlier timestamps bumped to last + 1 ms
    discontinuities: int = 0  # segments that begin with EXT-X-DISCONTINUITY
    _video: _Track = field(default_factory=_Track, repr=False)
    _audio: _Track = field(default_factory=_Track, repr=False)
    _keyframe_intervals_ms: deque[int] = field(
        default_factory=lambda: deque(maxlen=KEYFRAME_HISTORY), repr=False
    )

    def on_video_frame(self, now_ms: int, dts_ms: int, size: int, keyframe: bool) -> None:
        self._video.add(now_ms, dts_ms, size)
        if keyframe:
            self.keyframes += 1
            if self.last_keyframe_dts_ms is not None and dts_ms > self.last_keyframe_dts_ms:
                self._keyframe_intervals_ms.append(dts_ms - self.last_keyframe_dts_ms)
            self.last_keyframe_dts_ms = dts_ms

    def on_upload_queue(self, segments: int, size: int) -> None:
        self.upload_queue, self.upload_queue_bytes = segments, size
        self.upload_queue_peak = max(self.upload_queue_peak, segments)
        self.upload_queue_peak_bytes = max(self.upload_queue_peak_bytes, size)

    def on_audio_frame(self, now_ms: int, size: int, pts_ms: int) -> None:
        self._audio.add(now_ms, pts_ms, size)

    def frame_rate(self) -> float:
        """Frames per second of media time over the recent frames (not wall clock: a
        publisher catching up after a stall does not look like a faster camera)."""
        return self._video.media_rate()[1]

    def bitrate_bps(self) -> int:
        """Video + audio bits per second of media time, over the recent WINDOW_MS."""
        return self._video.media_rate()[0] + self._audio.media_rate()[0]

    @property
    def frames(self) -> int:
        """Video frames received."""
        return self._video.frames

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
                "bandwidth": self._video.bytes_per_s(now_ms),
                "codec": self.video.codec,
                "codecs": video_codec_string(self.video),  # RFC 6381, for CODECS=
            }
        audio = None
        if self.audio is not None:
            audio = {
                "sample_rate": self.audio.sample_rate,
                "bandwidth": self._audio.bytes_per_s(now_ms),
                "codec": self.audio.codec,
                "codecs": audio_codec_string(self.audio),
            }
        warnings = self.warnings()
        return {
            "video": video,
            "audio": audio,
            "health": {
                "warnings": warnings,
                "frames": self.frames,
                "keyframes": self.keyframes,
                "keyframe_interval_ms": self.keyframe_interval_ms(),
                "frame_rate": round(self.frame_rate(), 2),
                "bitrate_bps": self.bitrate_bps(),
                "video_bitrate_bps": self._video.media_rate()[0],
                "audio_bitrate_bps": self._audio.media_rate()[0],
                "segments": self.segments,
                "storage_error": self.storage_error,
                "upload_queue": self.upload_queue,
                "upload_queue_bytes": self.upload_queue_bytes,
                "upload_queue_peak": self.upload_queue_peak,
                "upload_queue_peak_bytes": self.upload_queue_peak_bytes,
                "snapshots": self.snapshots,
                "snapshots_skipped": self.snapshots_skipped,
                "forced_cuts": self.forced_cuts,
                "dropped_video_frames": self.dropped_video,
                "dropped_audio_frames": self.dropped_audio,
                "fixed_timestamps": self.fixed_timestamps,
                "discontinuities": self.discontinuities,
            },
        }

    def warnings(self) -> list[str]:
        warnings = []
        if self.frames and not self.keyframes:
            warnings.append("no_keyframe")  # frames arrive, but nothing can be segmented yet
        if self.storage_error:
            warnings.append("storage_error")
        return warnings

    def to_json(self, now_ms: int) -> str:
        return json.dumps(self.to_dict(now_ms), separators=(",", ":"))
