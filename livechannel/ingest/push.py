"""One push's lifetime, from an admitted publish to its final record: `LivePush`.

The edge connection that publishes owns one; it builds the push's pipeline (demux → segments →
storage), is the registry's handle on the push (heartbeat figures, idle check, kicks), and
ends it exactly once: last segment flushed, final figures recorded, history closed, and the
playlist's #EXT-X-ENDLIST scheduled for after the grace period. What happens to the socket
(statuses, FIN, close) stays with the edge; a kick from the registry is handed back to it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from livechannel.errors import StorageError
from livechannel.hls.pipeline import PushPipeline, ignore_events
from livechannel.hls.snapshot import JobSlots, SnapshotPlan
from livechannel.hls.upload_budget import UploadBudget
from livechannel.hls.uploads import Notify
from livechannel.ingest.admission import Admission
from livechannel.rtmp.messages import VIDEO_TYPE_ID
from livechannel.store.base import ChannelConfig, SegmentFormat

if TYPE_CHECKING:
    from livechannel.ingest.edge import IngestDeps

log = logging.getLogger("livechannel.ingest.edge")

END_RETRY_FIRST_DELAY_S = 0.2
END_RETRY_MAX_DELAY_S = 1.0  # a store that is back learns of the end within a second

Log = Callable[..., None]  # the edge's `_log(msg, *args, reason=None)`: one line with context


class LivePush:
    """A publish that was admitted: its pipeline, its registry entry, its end."""

    def __init__(
        self,
        deps: IngestDeps,
        admission: Admission,
        pipeline: PushPipeline,
        *,
        on_kick: Callable[[str], None],
        log_line: Log,
    ) -> None:
        push = admission.push
        self.deps = deps
        self.bucket, self.channel, self.push_id = push.bucket, push.channel, push.push_id
        self.playlist_name = admission.playlist_name
        self.pipeline = pipeline
        self._on_kick = on_kick
        self._log = log_line
        self._ended: asyncio.Task[None] | None = None

    @classmethod
    async def open(
        cls,
        deps: IngestDeps,
        admission: Admission,
        *,
        upload_budget: UploadBudget,
        snapshot_slots: JobSlots,
        on_kick: Callable[[str], None],
        log_line: Log,
    ) -> LivePush:
        """Build and open the pipeline (the playlist's continuation is read from the store),
        then register the push: from here on it must be ended with `end`."""
        push, channel = admission.push, admission.config
        limits = deps.config.limits
        segment_format = _segment_format(deps, channel, push.bucket)
        pipeline = PushPipeline(
            store=deps.store,
            storage=admission.storage,
            push=push,
            frag_duration_s=channel.frag_duration_s,
            frag_count=channel.frag_count,
            playlist_name=admission.playlist_name,
            max_segment_s=limits.forced_cut_s(channel.frag_duration_s),
            max_segment_bytes=limits.max_segment_bytes,
            queue_segments=limits.upload_queue_segments,
            max_pending_index_segments=limits.max_pending_index_segments,
            upload_budget=upload_budget,
            now_ms=deps.now_ms,
            snapshot=_snapshot_plan(deps, channel, push.bucket, snapshot_slots, log_line),
            segment_format=segment_format,
            part_duration_ms=_part_duration_ms(deps, segment_format, push.bucket),
            low_latency=deps.low_latency,
            notify=_notifier(deps, push.bucket, push.channel),
        )
        await pipeline.open()
        live = cls(deps, admission, pipeline, on_kick=on_kick, log_line=log_line)
        deps.registry.add(live)
        return live

    # --- media ------------------------------------------------------------------------------

    def media(self, type_id: int, timestamp_ms: int, payload: bytes) -> bool:
        """One audio or video message; returns whether the upload backlog is now full (stop
        reading until `wait_for_room`). Raises what the pipeline raises (PublishRefused for a
        stream we refuse, a decoder error for broken media)."""
        if type_id == VIDEO_TYPE_ID:
            return self.pipeline.video(timestamp_ms, payload)
        return self.pipeline.audio(timestamp_ms, payload)

    async def wait_for_room(self) -> None:
        await self.pipeline.wait_for_room()

    # --- the registry's session ------------------------------------------------------------

    def stats_json(self, now_ms: int) -> str:
        self.pipeline.report_health()  # once a heartbeat: on_stream_health when warnings change
        return self.pipeline.stats.to_json(now_ms)

    def last_media_ms(self) -> int:
        return self.pipeline.last_media_ms

    def kick(self, reason: str) -> None:
        self._on_kick(reason)

    # --- the end ------------------------------------------------------------------------------

    @property
    def ending(self) -> bool:
        return self._ended is not None

    async def end(self, reason: str) -> None:
        """End the push once; a second call waits for the first."""
        if self._ended is None:
            self._ended = asyncio.ensure_future(self._ending(reason))
        await asyncio.shield(self._ended)

    async def _ending(self, reason: str) -> None:
        try:
            await self._end(reason)
        finally:
            # The edge holds this push and these callbacks are its bound methods: let go of
            # them, so that a closed connection is freed by reference counting, not left in
            # a cycle for the collector.
            self._on_kick = _kicked_after_end
            self._log = _silent

    async def _end(self, reason: str) -> None:
        deps, pipeline = self.deps, self.pipeline
        try:
            await pipeline.close()
        except Exception:
            log.exception("flushing the last segment of %s/%s failed", self.bucket, self.channel)
        deps.registry.remove(self)
        # A last heartbeat: the final figures outlive the push (history, GET /-/status), even
        # for a push shorter than one heartbeat interval.
        now = deps.now_ms()
        try:
            await deps.store.heartbeat(self.push_id, now, pipeline.stats.to_json(now))
        except Exception:
            log.exception("final figures of %s/%s not recorded", self.bucket, self.channel)
        end_ms = deps.now_ms()
        await record_end(deps, self.push_id, end_ms, self._log)
        stats = pipeline.stats
        self._log(
            "push ended (%s): %d segments, keyframe interval %s ms, %.2f fps, %d kbit/s",
            reason,
            stats.segments,
            stats.keyframe_interval_ms(),
            stats.frame_rate(),
            stats.bitrate_bps() // 1000,
        )
        duration_s = (end_ms - pipeline.push.start_ms) / 1000
        pipeline.notify(
            "on_publish_done",
            {"push_id": self.push_id, "reason": reason, "segments": stats.segments,
             "duration_s": duration_s},
        )  # fmt: skip
        deps.registry.schedule_endlist(pipeline.live_playlist)


def _kicked_after_end(reason: str) -> None:
    pass  # the push is over: nothing left to disconnect


def _silent(msg: str, *args: object, reason: str | None = None) -> None:
    pass


def _part_duration_ms(deps: IngestDeps, segment_format: SegmentFormat, bucket: str) -> int:
    """LL-HLS parts: the bucket's part_duration_s, for fMP4 pushes only."""
    bucket_config = deps.config.bucket(bucket)
    if segment_format is not SegmentFormat.FMP4 or bucket_config is None:
        return 0
    return round(bucket_config.hls.part_duration_s * 1000)


def _segment_format(deps: IngestDeps, channel: ChannelConfig, bucket: str) -> SegmentFormat:
    """The channel's SegmentFormat element wins over its bucket's [hls] table."""
    if channel.segment_format is not None:
        return channel.segment_format
    bucket_config = deps.config.bucket(bucket)
    return bucket_config.hls.segment_format if bucket_config else SegmentFormat.TS


def _snapshot_plan(
    deps: IngestDeps, channel: ChannelConfig, bucket: str, slots: JobSlots, log_line: Log
) -> SnapshotPlan | None:
    snapshot = channel.snapshot
    if snapshot is None:
        return None
    dest = snapshot.dest_bucket or bucket
    storage = deps.storages.get(dest)
    if storage is None:  # PutLiveChannel checks; the bucket left the config since
        log_line("no snapshots: DestBucket %r is not served here", dest)
        return None
    return SnapshotPlan(snapshot.interval_s, storage, slots)


async def record_end(deps: IngestDeps, push_id: int, end_ms: int, log_line: Log) -> None:
    """End the push's record, retrying while the metadata store is unreachable: a push left
    running in the store would keep its channel "live" for good."""
    delay_s = END_RETRY_FIRST_DELAY_S
    while True:
        try:
            await deps.store.end_push(push_id, end_ms)
            return
        except StorageError as e:
            log_line("push end not recorded yet (%s); retrying in %.1f s", e, delay_s)
            await asyncio.sleep(delay_s)
            delay_s = min(delay_s * 2, END_RETRY_MAX_DELAY_S)


def _notifier(deps: IngestDeps, bucket: str, channel: str) -> Notify:
    hooks = deps.webhooks
    return hooks.notifier(bucket, channel) if hooks is not None else ignore_events
