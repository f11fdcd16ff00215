"""The RTMP edge: one asyncio Protocol per connection driving the sans-IO `ServerConnection`.

Bytes in → `receive_data` → events → publish decision (admission.py) / media pipeline →
bytes out. The only waits are the publish decision (metadata store) and storage
backpressure; during both the socket is paused, so a slow store slows the publisher instead
of growing our memory.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import cast

from livechannel.config import Config
from livechannel.errors import StorageError
from livechannel.fleet.registry import Registry
from livechannel.hls.pipeline import (
    Notify,
    PublishRefused,
    PushPipeline,
    end_playlist,
    ignore_events,
)
from livechannel.hls.snapshot import JobSlots, SnapshotPlan
from livechannel.hls.upload_budget import UploadBudget
from livechannel.ingest.admission import REJECTED, Refusal, admit
from livechannel.ingest.gate import ConnectionGate
from livechannel.ops import metrics
from livechannel.ops.metrics import ChannelFigures, LiveFigures, channel_figures
from livechannel.ops.webhooks import Webhooks
from livechannel.rtmp.connection import ConnectionState, ServerConnection
from livechannel.rtmp.errors import RtmpError
from livechannel.rtmp.events import (
    AudioData,
    ConnectRequested,
    MetaData,
    PlayRefused,
    PublishRequested,
    Unpublished,
    VideoData,
)
from livechannel.rtmp.limits import RtmpLimits
from livechannel.rtmp.messages import MessageType
from livechannel.storage.base import ObjectStorage
from livechannel.store.base import ChannelConfig, MetadataStore, SegmentFormat

log = logging.getLogger("livechannel.ingest.edge")

UNPUBLISHED_LINGER_S = 5.0  # after unpublish, the client closes; we close if it does not
# After a kick's onStatus, keep reading (and discarding) this long so the publisher can read
# it and close: closing with its media unread would send a TCP reset, which can destroy the
# status before the publisher reads it.
KICK_LINGER_S = 2.0
# What a publisher reads when the metadata store cannot be reached (a database restart).
STORE_UNAVAILABLE = "service unavailable: the metadata store cannot be reached; retry shortly"
END_RETRY_FIRST_DELAY_S = 0.2
END_RETRY_MAX_DELAY_S = 1.0  # a store that is back learns of the end within a second
HANDSHAKE_STATES = frozenset({ConnectionState.AWAIT_C0C1, ConnectionState.AWAIT_C2})


def rtmp_limits(config: Config) -> RtmpLimits:
    """The RTMP core's bounds, from the configured limits."""
    limits = config.limits
    return RtmpLimits(
        max_message_bytes=limits.max_rtmp_message_bytes,
        max_peer_chunk_size=limits.max_rtmp_chunk_size,
        # a few interleaved maximum-size messages at once (the core's own default ratio)
        max_partial_bytes=2 * limits.max_rtmp_message_bytes,
    )


@dataclass(frozen=True, slots=True)
class IngestDeps:
    config: Config
    store: MetadataStore
    storages: Mapping[str, ObjectStorage]
    credentials: Mapping[str, str]
    registry: Registry
    worker: str  # "host:pid", owner of the pushes this process runs
    now_ms: Callable[[], int]
    webhooks: Webhooks | None = None  # the operator's hooks (livechannel.ops.webhooks)


class IngestServer:
    """Shared state of all RTMP connections in this process."""

    def __init__(self, deps: IngestDeps) -> None:
        self.deps = deps
        self.connections: set[RtmpProtocol] = set()
        self.tasks: set[asyncio.Task[None]] = set()  # per-connection background work
        limits = deps.config.limits
        self.gate = ConnectionGate(limits.max_connections, limits.max_connections_per_ip)
        self.rtmp_limits = rtmp_limits(deps.config)
        self.snapshot_slots = JobSlots(limits.max_snapshot_jobs)
        self.upload_budget = UploadBudget(limits.max_upload_queue_bytes)
        self._ids = itertools.count(1)
        self.closed_received_bytes = 0  # RTMP bytes of the connections already closed

    def live_figures(self, max_channels: int) -> LiveFigures:
        """For the metrics scrape (livechannel.ops.metrics): read now, nothing kept per chunk.
        `max_channels` > 0 adds per-channel figures for that many live channels."""
        conns = list(self.connections)
        figures = LiveFigures(
            publishers=sum(1 for c in conns if c.pipeline is not None),
            rtmp_connections=len(conns),
            rtmp_received_bytes=self.closed_received_bytes
            + sum(c.conn.bytes_received for c in conns),
            upload_queue_bytes=self.upload_budget.queued_bytes,
            heartbeat_lag_s=self.deps.registry.lag_s,
        )
        if max_channels > 0:
            live = [
                ChannelFigures(
                    c.bucket,
                    c.channel,
                    c.conn.bytes_received,
                    p.stats.segments,
                    p.stats.bitrate_bps(),
                )
                for c in conns
                if (p := c.pipeline) is not None
            ]
            figures.channels, figures.channels_omitted = channel_figures(live, max_channels)
        return figures

    def protocol(self) -> RtmpProtocol:
        return RtmpProtocol(self, next(self._ids))

    async def close_all(self, reason: str) -> None:
        """Graceful shutdown: flush every open segment and close push records."""
        conns = list(self.connections)
        for conn in conns:
            conn.kick(reason)
        await asyncio.gather(*(c.finished for c in conns), return_exceptions=True)
        for conn in conns:
            conn._close()  # do not linger: the service is stopping
        self.snapshot_slots.executor.shutdown(wait=False)  # every push's snapshots are done


class RtmpProtocol(asyncio.Protocol):
    def __init__(self, server: IngestServer, conn_id: int) -> None:
        self.server = server
        self.deps = server.deps
        limits = self.deps.config.limits
        self.conn = ServerConnection(limits=server.rtmp_limits)
        self.conn_id = conn_id
        self.transport: asyncio.Transport | None = None
        self.peer = "?"
        self.ip = "?"
        self.tc_url = ""
        self.app = ""
        self.pipeline: PushPipeline | None = None
        self.stream_id = 0
        self.bucket = self.channel = ""
        self.push_id = 0
        self._waiting = False  # a publish decision or storage room is awaited: don't pump
        self._max_access_unit = limits.max_access_unit_bytes
        self._handshaking = True
        self._sink_on = False  # media arrive through the ServerConnection's media sink
        self._ending = False
        self._admitted = False  # counted by the gate: release on connection_lost
        self._timers: list[asyncio.TimerHandle] = []
        loop = asyncio.get_running_loop()
        self.finished: asyncio.Future[None] = loop.create_future()
        self._handshake_timer = loop.call_later(
            limits.handshake_timeout_s, self._deadline, "handshake"
        )
        self._timers.append(self._handshake_timer)
        self._timers.append(loop.call_later(limits.publish_timeout_s, self._deadline, "publish"))

    # --- asyncio callbacks ----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        transport = cast(asyncio.Transport, transport)
        self.transport = transport
        peer = transport.get_extra_info("peername") or ("?", 0)
        self.ip = str(peer[0])
        self.peer = f"{peer[0]}:{peer[1]}"
        refusal = self.server.gate.admit(self.ip)
        if refusal is not None:
            self._log("refused: %s", refusal)
            self._cancel_timers()
            transport.abort()
            return
        self._admitted = True
        self.server.connections.add(self)

    def data_received(self, data: bytes) -> None:
        if self.conn.closing or not self._admitted:
            return
        try:
            self.conn.receive_data(data)
        except RtmpError as e:
            self._log("protocol error: %s", e)
            self._close()
            return
        if self._handshaking and self.conn.state not in HANDSHAKE_STATES:
            self._handshaking = False
            self._handshake_timer.cancel()
        self._pump()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timers()
        # The sink is a bound method of this protocol held by its own connection: a cycle
        # that would keep both (and what they hold) until a full GC pass.
        self._sink_on = False
        self.conn.set_media_sink(None)
        if self._admitted:
            self._admitted = False
            self.server.gate.release(self.ip)
        if self in self.server.connections:
            self.server.connections.discard(self)
            self.server.closed_received_bytes += self.conn.bytes_received
        if self.pipeline is not None:
            self._spawn(self._end_push("connection closed"))
        elif not self._ending and not self.finished.done():
            self.finished.set_result(None)  # no push: nothing to flush

    # --- event pump -------------------------------------------------------------------------

    def _pump(self) -> None:
        conn = self.conn
        while not self._waiting and not conn.closing:
            event = conn.next_event()
            if event is None:
                break
            if isinstance(event, VideoData | AudioData):
                kind = MessageType.VIDEO if isinstance(event, VideoData) else MessageType.AUDIO
                self._media(kind, event.timestamp_ms, event.payload)
            elif isinstance(event, MetaData):
                pass  # onMetaData is advisory; we measure the real stream instead
            elif isinstance(event, ConnectRequested):
                self.app, self.tc_url = event.app, event.tc_url
            elif isinstance(event, PublishRequested):
                self._waiting = True
                self._pause()
                self._spawn(self._decide(event))
            elif isinstance(event, Unpublished):
                if self.pipeline is not None and event.stream_id == self.stream_id:
                    # Keep the socket: clients send more commands after FCUnpublish and treat
                    # a close from our side as an error (GStreamer rtmp2sink); they close it.
                    self._spawn(self._end_push("unpublished", close=False))
                    loop = asyncio.get_running_loop()
                    self._timers.append(loop.call_later(UNPUBLISHED_LINGER_S, self._close))
            elif isinstance(event, PlayRefused):
                self._log("refused play of %r: playing over RTMP is not supported", event.name)
                self._flush()
                self._close()
        # Publishing and taking media: from the next read on, audio/video go straight to the
        # pipeline (no event per message); anything else still comes as events.
        if not (self._sink_on or self._waiting or self._ending) and self.pipeline is not None:
            self._sink_on = True
            conn.set_media_sink(self._media)
        self._flush()

    def _media(self, type_id: int, timestamp_ms: int, payload: bytes) -> None:
        """One audio/video message (the ServerConnection's media sink, or from an event)."""
        pipeline = self.pipeline
        if pipeline is None or self._ending:
            return
        if len(payload) > self._max_access_unit:
            limit = self._max_access_unit
            self.kick(f"a frame of {len(payload)} bytes is over the {limit}-byte limit")
            return
        try:
            if type_id == MessageType.VIDEO:
                pipeline.video(timestamp_ms, payload)
            else:
                pipeline.audio(timestamp_ms, payload)
        except PublishRefused as e:
            self.kick(str(e))
            return
        except Exception as e:  # a decoder error in one stream must not touch others
            self._log("bad media, closing: %s: %s", type(e).__name__, e)
            self.kick(f"malformed media: {e}")
            return
        if pipeline.backlog_full:
            self._waiting = True
            self._sink_on = False
            self.conn.set_media_sink(None)  # the rest of this read waits in the event queue
            self._pause()
            self._spawn(self._wait_for_room(pipeline))

    async def _wait_for_room(self, pipeline: PushPipeline) -> None:
        await pipeline.wait_for_room()
        self._waiting = False
        self._resume()
        self._pump()

    # --- publish policy ---------------------------------------------------------------------

    async def _decide(self, event: PublishRequested) -> None:
        try:
            await self._try_publish(event)
        except StorageError as e:
            # The metadata store is unreachable (a database restart): running pushes go on,
            # new ones are refused until it is back; encoders retry.
            self._log("publish refused: metadata store unavailable: %s", e)
            if self.push_id and self.pipeline is None:
                self._spawn(self._record_end(self.push_id, self.deps.now_ms()))
            self._refuse(REJECTED, STORE_UNAVAILABLE, "store_unavailable")
        except Exception:
            log.exception("publish of %s/%s failed", self.bucket, self.channel)
            if self.push_id and self.pipeline is None:
                await self.deps.store.end_push(self.push_id, self.deps.now_ms())
            self._refuse("NetStream.Publish.Rejected", "internal error", "internal")

    async def _record_end(self, push_id: int, end_ms: int) -> None:
        """End the push's record, retrying while the metadata store is unreachable: a push
        left running in the store would keep its channel "live" for good."""
        delay_s = END_RETRY_FIRST_DELAY_S
        while True:
            try:
                await self.deps.store.end_push(push_id, end_ms)
                return
            except StorageError as e:
                self._log("push end not recorded yet (%s); retrying in %.1f s", e, delay_s)
                await asyncio.sleep(delay_s)
                delay_s = min(delay_s * 2, END_RETRY_MAX_DELAY_S)

    async def _try_publish(self, event: PublishRequested) -> None:
        deps = self.deps
        self.stream_id = event.stream_id
        lag_s, max_lag_s = deps.registry.lag_s, deps.config.limits.max_heartbeat_lag_s
        if lag_s > max_lag_s:
            busy = f"server busy (running {lag_s:.1f} s behind); publish elsewhere or retry"
            return self._refuse(REJECTED, busy, "busy")
        try:
            admission = await admit(
                event.app, event.name, self.tc_url, peer=self.peer, config=deps.config,
                store=deps.store, storages=deps.storages, credentials=deps.credentials,
                worker=deps.worker, now_ms=deps.now_ms(),
                ask=self._ask_hook if deps.webhooks is not None else None,
            )  # fmt: skip
        except Refusal as r:
            self.bucket, self.channel = r.bucket, r.channel
            return self._refuse(r.code, r.description, r.reason)
        push, channel = admission.push, admission.config
        self.bucket, self.channel, self.push_id = push.bucket, push.channel, push.push_id
        limits = deps.config.limits
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
            upload_budget=self.server.upload_budget,
            now_ms=deps.now_ms,
            snapshot=self._snapshot_plan(channel, push.bucket),
            segment_format=self._segment_format(channel, push.bucket),
            notify=self._notifier(push.bucket, push.channel),
        )
        await pipeline.open()
        self.pipeline = pipeline
        deps.registry.add(self)
        if self.transport is None or self.transport.is_closing():
            await self._end_push("connection closed while deciding")  # peer left meanwhile
            return
        self._cancel_timers()
        self.conn.accept_publish(event.stream_id)
        metrics.accepted()
        self._log("publishing (playlist %s)", admission.playlist_name)
        self._waiting = False
        self._resume()
        self._pump()

    def _segment_format(self, channel: ChannelConfig, bucket: str) -> SegmentFormat:
        """The channel's SegmentFormat element wins over its bucket's [hls] table."""
        if channel.segment_format is not None:
            return channel.segment_format
        bucket_config = self.deps.config.bucket(bucket)
        return bucket_config.hls.segment_format if bucket_config else SegmentFormat.TS

    def _snapshot_plan(self, channel: ChannelConfig, bucket: str) -> SnapshotPlan | None:
        snapshot = channel.snapshot
        if snapshot is None:
            return None
        dest = snapshot.dest_bucket or bucket
        storage = self.deps.storages.get(dest)
        if storage is None:  # PutLiveChannel checks; the bucket left the config since
            self._log("no snapshots: DestBucket %r is not served here", dest)
            return None
        return SnapshotPlan(snapshot.interval_s, storage, self.server.snapshot_slots)

    def _refuse(self, code: str, description: str, reason: str) -> None:
        """`reason`: a short fixed word for the metrics label (never client text)."""
        metrics.refused(reason)
        self._log("publish refused: %s", description, reason=description)
        self.conn.reject_publish(self.stream_id, code, description)
        self._flush()
        self._close()

    # --- end of a push ----------------------------------------------------------------------

    def kick(self, reason: str) -> None:
        """Disconnect the publisher with a readable status (disable, idle, bad stream, shutdown)."""
        if self._ending:
            return
        self._log("disconnecting publisher: %s", reason, reason=reason)
        if self.pipeline is not None:
            self._sink_on = False
            self.conn.set_media_sink(None)
            self.conn.send_status(self.stream_id, "error", "NetStream.Publish.Rejected", reason)
            self._flush()
            self._ending = True
            self._spawn(self._end_push(reason))
        else:
            self._close()

    async def _end_push(self, reason: str, *, close: bool = True) -> None:
        pipeline, self.pipeline = self.pipeline, None
        self._ending = True
        if pipeline is None:
            return  # another call is ending it and will resolve `finished`
        try:
            await self._finish_push(pipeline, reason, close=close)
        finally:
            # Only now: shutdown waits on `finished` for the flush, not for the socket.
            if not self.finished.done():
                self.finished.set_result(None)

    async def _finish_push(self, pipeline: PushPipeline, reason: str, *, close: bool) -> None:
        deps = self.deps
        if close:
            self._close_after_status()
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
        await self._record_end(self.push_id, end_ms)
        stats = pipeline.stats
        duration_s = (end_ms - pipeline.push.start_ms) / 1000
        pipeline.notify(
            "on_publish_done",
            {"push_id": self.push_id, "reason": reason, "segments": stats.segments,
             "duration_s": duration_s},
        )  # fmt: skip
        self._log(
            "push ended (%s): %d segments, keyframe interval %s ms, %.2f fps, %d kbit/s",
            reason,
            stats.segments,
            stats.keyframe_interval_ms(),
            stats.frame_rate(),
            stats.bitrate_bps() // 1000,
        )
        store, storage = deps.store, pipeline.storage
        bucket, channel = self.bucket, self.channel
        name = pipeline.playlist_key.rsplit("/", 1)[-1]
        frag_count, target_s = pipeline.frag_count, pipeline.target_s
        deps.registry.schedule_end(
            bucket,
            channel,
            lambda: end_playlist(store, storage, bucket, channel, name, frag_count, target_s),
        )

    # --- LiveSession protocol (registry) ---------------------------------------------------

    def stats_json(self, now_ms: int) -> str:
        pipeline = self.pipeline
        if pipeline is None:
            return "{}"
        pipeline.report_health()  # once a heartbeat: on_stream_health when warnings change
        return pipeline.stats.to_json(now_ms)

    # --- webhooks ---------------------------------------------------------------------------

    async def _ask_hook(self, bucket: str, channel: str, params: Mapping[str, str]) -> str | None:
        assert self.deps.webhooks is not None
        return await self.deps.webhooks.ask_publish(bucket, channel, self.peer, params)

    def _notifier(self, bucket: str, channel: str) -> Notify:
        hooks = self.deps.webhooks
        return hooks.notifier(bucket, channel) if hooks is not None else ignore_events

    def last_media_ms(self) -> int:
        pipeline = self.pipeline
        return pipeline.last_media_ms if pipeline is not None else self.deps.now_ms()

    # --- plumbing ---------------------------------------------------------------------------

    def _spawn(self, coro: Coroutine[object, object, None]) -> None:
        """Run `coro` in the background, referenced until done (the loop keeps only a weak
        reference, so an unreferenced task may be collected mid-flight)."""
        task = asyncio.get_running_loop().create_task(coro)
        self.server.tasks.add(task)
        task.add_done_callback(self.server.tasks.discard)

    def _cancel_timers(self) -> None:
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()

    def _deadline(self, what: str) -> None:
        if self.pipeline is None and not self._ending:
            self._log("closing: no %s within the time limit", what)
            self._close()

    def _flush(self) -> None:
        data = self.conn.data_to_send()
        if data and self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def _close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    def _close_after_status(self) -> None:
        """Send what is queued, then FIN; close for good when the publisher does or after
        KICK_LINGER_S (media still arriving meanwhile is ignored: no pipeline)."""
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if not transport.can_write_eof():
            transport.close()
            return
        transport.write_eof()
        loop = asyncio.get_running_loop()
        self._timers.append(loop.call_later(KICK_LINGER_S, self._close))

    def _pause(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.pause_reading()

    def _resume(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()

    def _log(self, msg: str, *args: object, reason: str | None = None) -> None:
        """One line with this connection's context as fields (livechannel.ops.logs): the
        text format shows `[conn N peer bucket/channel]`, the JSON format one key each."""
        context = {
            "conn": self.conn_id,
            "peer": self.peer,
            "bucket": self.bucket,
            "channel": self.channel,
            "push_id": self.push_id or None,
            "reason": reason,
        }
        log.info(msg, *args, extra=context)
