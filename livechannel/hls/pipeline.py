"""One push's path from RTMP messages to objects: demux → segment → upload → index → playlist.

The CPU part (demux, segmenter, TS muxing) runs synchronously as messages arrive; uploads run
in one task per push, in order, through a bounded queue. When the queue is full the ingest
edge stops reading the publisher's socket (TCP pushes back on the encoder) instead of growing
memory. The open segment goes to storage as it grows (a SegmentWriter, every
STREAM_FLUSH_BYTES: the local store appends it to a temp file), so a push holds at most that
much of it, not the whole segment. What happens to a closed segment, in which order (the
object, then the index and the playlist), is uploads.py's.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any

from livechannel.errors import OssError
from livechannel.hls.index_writer import IndexWriter
from livechannel.hls.live_endpoint import LiveEndpoint, LowLatencyRegistry
from livechannel.hls.live_playlist import LivePlaylist, live_target_s
from livechannel.hls.low_latency import LowLatencyPlaylist
from livechannel.hls.naming import SegmentName, SegmentNamer
from livechannel.hls.segmenter import Segmenter
from livechannel.hls.segments import MuxerFactory, SegmentReady
from livechannel.hls.snapshot import SnapshotPlan, Snapshotter
from livechannel.hls.stats import PushStats
from livechannel.hls.upload_budget import UploadBudget
from livechannel.hls.uploads import Notify, SegmentUploads
from livechannel.hls.window import LiveWindow
from livechannel.media.demux import Demuxer, UnsupportedAudio, UnsupportedVideo
from livechannel.media.fmp4 import Fmp4Muxer
from livechannel.media.frames import AudioConfig, AudioFrame, VideoConfig, VideoFrame
from livechannel.media.mpegts import TsMuxer
from livechannel.media.timestamps import Unwrapper
from livechannel.storage.base import ObjectStorage, SegmentWriter
from livechannel.store.base import MetadataStore, Push, SegmentFormat

log = logging.getLogger("livechannel.pipeline")


def ignore_events(event: str, fields: Mapping[str, Any]) -> None:
    """The `notify` of a push without webhooks."""


_MUXERS: dict[SegmentFormat, MuxerFactory] = {
    SegmentFormat.TS: TsMuxer,
    SegmentFormat.FMP4: Fmp4Muxer,
}

# Audio with no video for this long means an audio-only publisher (OSS API reference,
# LiveChannel overview: video is required).
AUDIO_ONLY_LIMIT_MS = 10_000
# The open segment is handed to its storage writer each time this much of it was muxed: what
# a push holds of it (and, on local disk, the size of one write). 128 KiB is ~0.4 s at
# 2.66 Mbit/s, instead of the whole segment held until the cut (1.7 MB for 5 s), for ~2.5
# writes a second per publisher (docs/performance.md, "Memory per publisher").
STREAM_FLUSH_BYTES = 128 * 1024


class PublishRefused(Exception):
    """The stream itself breaks the rules (not H.264, no video); message is user-readable."""


class PushPipeline:
    def __init__(
        self,
        *,
        store: MetadataStore,
        storage: ObjectStorage,
        push: Push,
        frag_duration_s: int,
        frag_count: int,
        playlist_name: str,
        max_segment_s: int,
        max_segment_bytes: int,
        queue_segments: int,
        upload_budget: UploadBudget,
        now_ms: Callable[[], int],
        max_pending_index_segments: int,
        snapshot: SnapshotPlan | None = None,
        segment_format: SegmentFormat = SegmentFormat.TS,
        notify: Notify = ignore_events,
        part_duration_ms: int = 0,
        low_latency: LowLatencyRegistry | None = None,
    ) -> None:
        """`notify(event, fields)`: what this push tells the operator's webhooks (never
        blocks: livechannel.ops.webhooks queues it)."""
        self.notify = notify
        self._health: list[str] = []
        self.store = store
        self.storage = storage
        self.push = push
        self.bucket, self.channel = push.bucket, push.channel
        self.playlist_key = f"{push.channel}/{playlist_name}"
        self.frag_count = frag_count
        self.frag_duration_ms = frag_duration_s * 1000
        self._gop_warned = False
        self.max_segment_ms = max_segment_s * 1000
        self._first_video_dts_ms: int | None = None  # until the first keyframe
        self.target_s = live_target_s(frag_duration_s, max_segment_s)
        self.playlist_name = playlist_name
        self.now_ms = now_ms
        self.stats = PushStats()
        self.snapshotter = (
            Snapshotter(snapshot, push.channel, self.stats, notify) if snapshot else None
        )
        self._demuxer = Demuxer(enhanced_audio=segment_format is SegmentFormat.FMP4)
        self._video_clock = Unwrapper()
        self._audio_clock = Unwrapper()
        self.segment_format = segment_format
        self._segmenter = Segmenter(
            frag_duration_s * 1000,
            max_segment_ms=max_segment_s * 1000,
            max_segment_bytes=max_segment_bytes,
            muxer_factory=_MUXERS[segment_format],
            part_duration_ms=part_duration_ms,
            stats=self.stats,
        )
        self._namer: SegmentNamer | None = None  # from the live window, at open
        # LL-HLS: parts and the playlist with parts, served from memory (low_latency.py).
        self.part_duration_ms = part_duration_ms
        self._ll_registry = low_latency if part_duration_ms else None
        self._ll: LiveEndpoint | None = None
        # Named at its first part (LL) or its first bytes handed to storage (_stream_open).
        self._open_named: SegmentName | None = None
        self._writer: SegmentWriter | None = None  # the open segment's, once it has bytes
        self._audio_only_since_ms: int | None = None
        self._audio_dropped = False
        self._uploader: asyncio.Task[None] | None = None
        self._last_media_ms = push.start_ms
        self.index = IndexWriter(store, max_pending_index_segments, self._on_index_fault)
        self._uploads = SegmentUploads(storage=storage, push=push,
                                       playlist_key=self.playlist_key,
                                       queue_segments=queue_segments,
                                       upload_budget=upload_budget, stats=self.stats,
                                       index=self.index, notify=notify)  # fmt: skip

    def _on_index_fault(self, error: str) -> None:
        self.stats.storage_error = error

    async def open(self) -> None:
        window = await LiveWindow.load(
            self.store, self.bucket, self.channel, self.frag_count, self.target_s
        )
        self._namer = SegmentNamer(self.channel, self.segment_format, window)
        if self._ll_registry is not None:
            state = LowLatencyPlaylist(push_id=self.push.push_id,
                                       part_target_ms=self.part_duration_ms,
                                       frag_count=self.frag_count,
                                       target_s=window.target_duration_s)  # fmt: skip
            state.seed(list(window.segments), window.discontinuity_sequence)
            self._ll = LiveEndpoint(state, self.channel, self.playlist_key.split("/", 1)[1])
            self._ll_registry.add(self.bucket, self._ll)
        self._uploads.window, self._uploads.ll = window, self._ll
        self._uploader = asyncio.create_task(self._upload_loop(), name=f"upload {self.channel}")
        self.index.start()

    # --- media in (synchronous, called by the ingest edge) ---------------------------------

    @property
    def live_playlist(self) -> LivePlaylist:
        return LivePlaylist(
            self.storage,
            self.bucket,
            self.channel,
            self.playlist_name,
            self.frag_count,
            self.target_s,
        )

    @property
    def last_media_ms(self) -> int:
        """When media last arrived, for the idle check. While the upload queue is full we
        stopped reading the publisher ourselves, so that time is not its idleness: a storage
        outage must not get the publisher kicked for "no media"."""
        return self.now_ms() if self.backlog_full else self._last_media_ms

    def video(self, timestamp_ms: int, payload: bytes) -> bool:
        """One video message. Returns `backlog_full`, looked at after every message (the edge
        stops reading then): one call here instead of a chain of properties from the edge."""
        now = self._arrived()
        for event in self._demuxer.video(self._video_clock.unwrap(timestamp_ms), payload):
            if event.__class__ is VideoFrame:  # nearly every message: the short way
                self._video_frame(event, now)
            elif isinstance(event, UnsupportedVideo):
                raise PublishRefused(
                    f"video codec {event.codec} is not supported; send H.264 (or HEVC, AV1, "
                    "VP9 over Enhanced RTMP into fMP4)"
                )
            else:
                self._media_event(event, now)
        return self._uploads.backlog_full

    def audio(self, timestamp_ms: int, payload: bytes) -> bool:
        """One audio message; returns `backlog_full`, as `video` does."""
        now = self._arrived()
        ts = self._audio_clock.unwrap(timestamp_ms)
        if self.stats.video is None:
            if self._audio_only_since_ms is None:
                self._audio_only_since_ms = ts
            elif ts - self._audio_only_since_ms > AUDIO_ONLY_LIMIT_MS:
                raise PublishRefused("no video in the stream: H.264 video is required")
        for event in self._demuxer.audio(ts, payload):
            if event.__class__ is AudioFrame:  # nearly every message: the short way
                self._audio_frame(event, now)
                continue
            if isinstance(event, UnsupportedAudio):
                if not self._audio_dropped:
                    self._audio_dropped = True
                    log.warning(
                        "audio codec %s is not AAC; audio dropped",
                        event.codec,
                        extra={"channel": self.channel},
                    )
                continue
            self._media_event(event, now)
        return self._uploads.backlog_full

    def _check_uploads(self) -> None:
        """Storage faults are retried; anything else (a key the storage refuses) ends the
        upload task, and then the publisher is refused instead of queueing without bound."""
        task = self._uploader
        if task is not None and task.done() and not task.cancelled():
            error = task.exception()
            if error is not None:
                raise PublishRefused(f"storage refused the stream: {error}")

    def _arrived(self) -> int:
        """A media message came: check the uploader, note the time (for the idle check)."""
        if self._uploader is not None and self._uploader.done():
            self._check_uploads()
        now = self.now_ms()
        self._last_media_ms = now
        return now

    def _video_frame(self, frame: VideoFrame, now: int) -> None:
        self.stats.on_video_frame(now, frame.dts_ms, len(frame.data), frame.keyframe)
        if frame.keyframe:
            self._on_keyframe(frame, now)
        elif not self.stats.keyframes:
            self._check_first_keyframe(frame.dts_ms)
        for ready in self._segmenter.push_video(frame, now):
            self._enqueue(ready)
        if self._ll is not None:
            self._take_parts()
        elif self._segmenter.open_untaken_bytes >= STREAM_FLUSH_BYTES:
            self._stream_open()

    def _audio_frame(self, frame: AudioFrame, now: int) -> None:
        self.stats.on_audio_frame(now, len(frame.data), frame.pts_ms)
        self._segmenter.push_audio(frame)
        if self._segmenter.open_untaken_bytes >= STREAM_FLUSH_BYTES:
            self._stream_open()

    def _media_event(self, event: object, now: int) -> None:
        """Any demuxer event but the common frames' short way (configs, end of stream)."""
        if isinstance(event, VideoFrame):
            return self._video_frame(event, now)
        if isinstance(event, AudioFrame):
            return self._audio_frame(event, now)
        if isinstance(event, VideoConfig):
            if event.codec != "H264" and self.segment_format is not SegmentFormat.FMP4:
                raise PublishRefused(
                    f"{event.codec} video needs fMP4 segments; send H.264, or set the "
                    "channel's SegmentFormat (or its bucket's segment_format) to fmp4"
                )
            self.stats.video = event
        elif isinstance(event, AudioConfig):
            self.stats.audio = event
        for ready in self._segmenter.push(event, now):  # type: ignore[arg-type]
            self._enqueue(ready)
        if self._ll is not None:
            self._take_parts()

    def _check_first_keyframe(self, dts_ms: int) -> None:
        """A stream with no keyframe yet produces nothing (a segment starts at one). Past
        the channel's forced-cut time (max(2·FragDuration, 60 s) of media: a segment would
        have been cut by then) the push is ended with the reason, not left Live and empty."""
        if self._first_video_dts_ms is None:
            self._first_video_dts_ms = dts_ms
        elif dts_ms - self._first_video_dts_ms > self.max_segment_ms:
            raise PublishRefused(
                f"no keyframe in the first {self.max_segment_ms // 1000} s of video: nothing "
                "can be segmented; set the encoder's keyframe interval (e.g. 2 s)"
            )

    def _on_keyframe(self, frame: VideoFrame, now: int) -> None:
        video = self.stats.video
        if self.snapshotter is not None and (video is None or video.codec == "H264"):
            self.snapshotter.on_keyframe(frame, now)
        self._check_keyframe_interval()

    def _check_keyframe_interval(self) -> None:
        interval_ms = self.stats.keyframe_interval_ms()
        if interval_ms is None or interval_ms <= self.frag_duration_ms or self._gop_warned:
            return
        self._gop_warned = True
        log.warning(
            "%s/%s: keyframes arrive every %.1f s, longer than FragDuration %d s, so segments "
            "will be about %.1f s long. Set the encoder's keyframe interval to %d s or less "
            "(OBS: Settings > Output > Keyframe Interval; ffmpeg: -g <fps x seconds>).",
            self.bucket,
            self.channel,
            interval_ms / 1000,
            self.frag_duration_ms // 1000,
            interval_ms / 1000,
            self.frag_duration_ms // 1000,
        )

    def _name(self, arrival_ms: int, init: bytes | None, discontinuity: bool) -> SegmentName:
        """Name a segment (naming.py) when it is closed, or at its first part or bytes."""
        assert self._namer is not None, "a push names segments once open"
        return self._namer.name(arrival_ms, init, discontinuity)

    def _take_parts(self) -> None:
        """LL-HLS: hand the parts the segmenter completed to the playlist in memory."""
        live = self._ll
        assert live is not None
        parts = self._segmenter.take_parts()
        if not parts:
            return
        state = live.state
        for part in parts:
            if part.index == 0:
                named = self._name(part.segment_arrival_ms, part.init, part.discontinuity)
                self._open_named = named
                map_name = named.init_key.rsplit("/", 1)[-1]
                if part.init is not None:
                    state.init = (map_name, part.init)
                state.open_segment(named.seq, named.key.rsplit("/", 1)[-1], named.key_ms,
                                   named.discontinuity, map_name)  # fmt: skip
            state.add_part(part.duration_ms, part.independent, part.chunks, part.size)
        live.changed()

    def _open_writer(self, key: str) -> SegmentWriter:
        try:
            return self.storage.open_writer(key)
        except OssError as e:  # a name the store cannot hold: nothing of this push can be
            raise PublishRefused(f"storage refused the stream: {e}") from e

    def _stream_open(self) -> None:
        """Hand what was muxed of the open segment to its writer (named now: its key)."""
        writer = self._writer
        if writer is None:
            named = self._open_named = self._name(*self._segmenter.open_segment())
            writer = self._writer = self._open_writer(named.key)
        writer.write(self._segmenter.take_open())

    def _enqueue(self, ready: SegmentReady) -> None:
        # Every SegmentReady closes the open segment (segmenter.py): the writer and name of
        # the open segment, if it has them, are this one's.
        if self._ll is not None:
            self._take_parts()  # the closing segment's last part comes first
            named = self._open_named
            assert named is not None, "an LL-HLS segment is named by its first part"
            self._ll.state.close_segment(ready.duration_ms, ready.chunks)
            self._ll.changed()
        else:
            named = self._open_named or self._name(
                ready.arrival_ms, ready.init, ready.discontinuity
            )
        writer, self._writer, self._open_named = self._writer, None, None
        if writer is None:
            writer = self._open_writer(named.key)
        writer.write(ready.chunks)
        self._uploads.put(ready, named, writer)

    def due_in_ms(self) -> int | None:
        """About how many ms of the stream until the open part (LL-HLS) or segment is
        complete (None: nothing open): the ingest edge reads promptly only near that moment."""
        return self._segmenter.due_in_ms()

    @property
    def backlog_full(self) -> bool:
        return self._uploads.backlog_full

    async def wait_for_room(self) -> None:
        while self.backlog_full and self._uploader is not None and not self._uploader.done():
            await self._uploads.wait_for_change()

    # --- end of push ------------------------------------------------------------------------

    async def close(self) -> None:
        """Flush the partial segment and wait until everything queued is stored."""
        for ready in self._segmenter.flush(self.now_ms()):
            self._enqueue(ready)
        self._uploads.close()
        try:
            if self._uploader is not None:
                await self._uploader
            await self.index.flush()  # before the push ends: see index_writer.py
        finally:
            self._drop_queue()  # what a failed upload task left (or the flush queued after)
            await self.index.stop()
            if self._ll is not None and self._ll_registry is not None:
                # Storage's playlist (classic, complete) answers from now on.
                self._ll.state.finished = True
                self._ll.changed()
                self._ll_registry.remove(self.bucket, self._ll)
        if self.snapshotter is not None:
            await self.snapshotter.close()

    # --- uploads (one task per push, strictly in order: uploads.py) -----------------------

    async def _upload_loop(self) -> None:
        try:
            await self._uploads.run()
        finally:
            self._drop_queue()  # empty unless the task failed or was cancelled

    def _drop_queue(self) -> None:
        """Forget segments that will never be stored (the open one's writer too)."""
        self._uploads.drop()
        if self._writer is not None:
            self._writer.abort()
            self._open_named = self._writer = None

    def report_health(self) -> None:
        """Tell the webhooks when the push's warnings change (called once per heartbeat):
        stats' own (no_keyframe, storage_error) and a keyframe interval over FragDuration."""
        warnings = self.stats.warnings() + (["long_gop"] if self._gop_warned else [])
        if warnings != self._health:
            self._health = warnings
            self.notify("on_stream_health", {"push_id": self.push.push_id, "warnings": warnings})
