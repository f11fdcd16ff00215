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
from enum import Enum
from typing import cast

from livechannel.config import Config
from livechannel.errors import StorageError
from livechannel.fleet.registry import Registry
from livechannel.hls.live_endpoint import LowLatencyRegistry
from livechannel.hls.pipeline import PublishRefused, PushPipeline
from livechannel.hls.snapshot import JobSlots
from livechannel.hls.upload_budget import UploadBudget
from livechannel.ingest.admission import REJECTED, Refusal, admit
from livechannel.ingest.gate import ConnectionGate
from livechannel.ingest.push import LivePush, record_end
from livechannel.ingest.reads import ReadBatch, ReadPacing
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
from livechannel.store.base import MetadataStore

log = logging.getLogger("livechannel.ingest.edge")

UNPUBLISHED_LINGER_S = 5.0  # after unpublish, the client closes; we close if it does not
# After a kick's onStatus, keep reading (and discarding) this long so the publisher can read
# it and close: closing with its media unread would send a TCP reset, which can destroy the
# status before the publisher reads it.
KICK_LINGER_S = 2.0
# What a publisher reads when the metadata store cannot be reached (a database restart).
STORE_UNAVAILABLE = "service unavailable: the metadata store cannot be reached; retry shortly"
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
    # LL-HLS pushes of this process, which the HTTP API answers from memory.
    low_latency: LowLatencyRegistry | None = None


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
        self.reads = ReadPacing(lambda: len(deps.registry.sessions))

    def live_figures(self, max_channels: int) -> LiveFigures:
        """For the metrics scrape (livechannel.ops.metrics): read now, nothing kept per chunk.
        `max_channels` > 0 adds per-channel figures for that many live channels."""
        conns = list(self.connections)
        figures = LiveFigures(
            publishers=sum(1 for c in conns if c.pipeline is not None),
            rtmp_connections=len(conns),
            rtmp_received_bytes=self.closed_received_bytes + sum(c.received_bytes for c in conns),
            upload_queue_bytes=self.upload_budget.queued_bytes,
            heartbeat_lag_s=self.deps.registry.lag_s,
        )
        if max_channels > 0:
            live = [
                ChannelFigures(
                    c.bucket,
                    c.channel,
                    c.received_bytes,
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
        self.reads.close()
        self.snapshot_slots.executor.shutdown(wait=False)  # every push's snapshots are done


class EdgeState(Enum):
    """Where one RTMP connection is. Transitions (all in RtmpProtocol):

    HANDSHAKE ─▶ SESSION ─▶ DECIDING ─▶ PUBLISHING ⇄ HELD
    PUBLISHING/HELD ─kick─▶ ENDING ─▶ LINGERING;  PUBLISHING ─unpublish─▶ UNPUBLISHED
    any ─▶ CLOSED (we close, the peer closes, or the RTMP core refused and closes)
    """

    HANDSHAKE = "handshake"  # C0/C1/C2 not done; the handshake deadline runs
    SESSION = "session"  # connect/createStream: no publish yet; the publish deadline runs
    DECIDING = "deciding"  # the publish decision is awaited; reading paused
    PUBLISHING = "publishing"  # media go to the push (through the core's media sink)
    HELD = "held"  # publishing, reading paused until the push's upload queue has room
    ENDING = "ending"  # kicked: status sent, the push is being ended; media ignored
    LINGERING = "lingering"  # FIN sent after a kick: input discarded until the peer closes
    UNPUBLISHED = "unpublished"  # the publisher unpublished: push ended, socket left to it
    CLOSED = "closed"  # transport closed or closing: nothing is read or written any more

    # Members are singletons, equal only to themselves: hashed by identity, in C. (Enum's own
    # __hash__ is a Python call, and `_media` looks the state up in TAKING_MEDIA per message.)
    __hash__ = object.__hash__


# The states data_received looks at on every read, read off the class once: in Python 3.11
# a member read off its Enum class goes through EnumType.__getattr__, ~900 instructions.
_HANDSHAKE, _PUBLISHING = EdgeState.HANDSHAKE, EdgeState.PUBLISHING
_LINGERING, _CLOSED = EdgeState.LINGERING, EdgeState.CLOSED
TAKING_MEDIA = frozenset({EdgeState.PUBLISHING, EdgeState.HELD})
# Before a push exists: the deadlines close the connection, a kick just closes it.
NO_PUSH_YET = frozenset({EdgeState.HANDSHAKE, EdgeState.SESSION, EdgeState.DECIDING})


class RtmpProtocol(asyncio.Protocol):
    """One RTMP connection: the asyncio edge around a sans-IO `ServerConnection`."""

    def __init__(self, server: IngestServer, conn_id: int) -> None:
        self.server = server
        self.deps = server.deps
        limits = self.deps.config.limits
        self.conn = ServerConnection(limits=server.rtmp_limits)
        self.conn_id = conn_id
        self.state = EdgeState.HANDSHAKE
        self.transport: asyncio.Transport | None = None
        self.peer = "?"
        self.ip = "?"
        self.tc_url = ""
        self.app = ""
        self.push: LivePush | None = None
        self.stream_id = 0
        self.bucket = self.channel = ""
        self.push_id = 0
        self._max_access_unit = limits.max_access_unit_bytes
        self._dropped_bytes = 0  # received after our FIN, dropped unread
        self.resting = False  # not read until the process's next rest tick (ingest/reads)
        self.paced = False  # publishing and read less often (ingest/reads.py)
        self.low_latency = False  # an LL-HLS push: never rests
        self.batch: ReadBatch | None = None  # its receive low-water mark, a plain TCP socket
        self._timers: list[asyncio.TimerHandle] = []
        loop = asyncio.get_running_loop()
        # Resolved once this connection has no push left to flush (shutdown waits on it).
        self.finished: asyncio.Future[None] = loop.create_future()
        self._handshake_timer = loop.call_later(
            limits.handshake_timeout_s, self._deadline, "handshake"
        )
        self._timers.append(self._handshake_timer)
        self._timers.append(loop.call_later(limits.publish_timeout_s, self._deadline, "publish"))

    @property
    def received_bytes(self) -> int:
        """Every byte the peer sent us, read or dropped."""
        return self.conn.bytes_received + self._dropped_bytes

    @property
    def pipeline(self) -> PushPipeline | None:
        """The running push's pipeline (None before a publish is accepted and once it ended)."""
        push = self.push
        return push.pipeline if push is not None and not push.ending else None

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
            self.state = EdgeState.CLOSED
            transport.abort()
            return
        self.server.connections.add(self)  # admitted: the gate is released on connection_lost

    def data_received(self, data: bytes) -> None:
        if self.state is _CLOSED or self.state is _LINGERING:
            self._dropped_bytes += len(data)  # our FIN is out: what still comes is dropped
            return
        try:
            pending = self.conn.receive_data(data)
        except RtmpError as e:
            self._log("protocol error: %s", e)
            self._close()
            return
        if self.state is _HANDSHAKE and self.conn.state not in HANDSHAKE_STATES:
            self.state = EdgeState.SESSION
            self._handshake_timer.cancel()
        if pending or self.state is not _PUBLISHING:  # publishing: usually nothing waits
            self._pump()
        if self.paced and self.state is _PUBLISHING:
            self.server.reads.after_read(self, len(data))

    @property
    def publishing(self) -> bool:
        return self.state is EdgeState.PUBLISHING

    def wake(self) -> None:
        """The rest is over: read again (unless something else holds reading paused)."""
        if not self.resting:
            return
        self.resting = False
        if self.state not in (EdgeState.HELD, EdgeState.DECIDING, EdgeState.CLOSED):
            self._resume()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timers()
        self.state = EdgeState.CLOSED
        self.server.reads.forget(self)
        # The sink is a bound method of this protocol held by its own connection: a cycle
        # that would keep both (and what they hold) until a full GC pass.
        self.conn.set_media_sink(None)
        if self in self.server.connections:
            self.server.connections.discard(self)
            self.server.closed_received_bytes += self.received_bytes
            self.server.gate.release(self.ip)
        push, self.push = self.push, None  # the push holds our kick and log: no cycle
        if push is not None and not push.ending:
            self._spawn(self._end_push(push, "connection closed"))
        elif push is None and not self.finished.done():
            self.finished.set_result(None)  # no push: nothing to flush

    # --- event pump -------------------------------------------------------------------------

    def _pump(self) -> None:
        conn = self.conn
        while self.state not in (EdgeState.DECIDING, EdgeState.HELD, EdgeState.CLOSED):
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
                self.state = EdgeState.DECIDING
                self.pause()
                self._spawn(self._decide(event))
            elif isinstance(event, Unpublished):
                if self.state is EdgeState.PUBLISHING and event.stream_id == self.stream_id:
                    self._unpublished()
            elif isinstance(event, PlayRefused):
                self._log("refused play of %r: playing over RTMP is not supported", event.name)
        # Publishing and taking media: from the next read on, audio/video go straight to the
        # push (no event per message); anything else still comes as events.
        conn.set_media_sink(self._media if self.state is EdgeState.PUBLISHING else None)
        self._flush()
        if conn.closing:
            self._close()  # the core refused (a play, a second publish) and said why: close

    def _media(self, type_id: int, timestamp_ms: int, payload: bytes) -> None:
        """One audio/video message (the ServerConnection's media sink, or from an event).
        The upload queue is looked at after every message, not once a read: a read can carry
        more than one segment's end, and the queue's bound (upload_queue_segments) is exact."""
        push = self.push
        if push is None or self.state not in TAKING_MEDIA:
            return
        if len(payload) > self._max_access_unit:
            limit = self._max_access_unit
            self.kick(f"a frame of {len(payload)} bytes is over the {limit}-byte limit")
            return
        try:
            backlog_full = push.media(type_id, timestamp_ms, payload)
        except PublishRefused as e:
            self.kick(str(e))
            return
        except Exception as e:  # a decoder error in one stream must not touch others
            self._log("bad media, closing: %s: %s", type(e).__name__, e)
            self.kick(f"malformed media: {e}")
            return
        if backlog_full:  # stop reading until it has room: TCP pushes back on the encoder
            self.state = EdgeState.HELD
            self.conn.set_media_sink(None)  # the rest of this read waits in the event queue
            self.pause()
            self._spawn(self._wait_for_room(push))

    async def _wait_for_room(self, push: LivePush) -> None:
        await push.wait_for_room()
        if self.state is EdgeState.HELD:
            self.state = EdgeState.PUBLISHING
        if self.state is not EdgeState.CLOSED:
            self._resume()  # also when ending: the publisher's close must still be seen
            self._pump()

    # --- publish policy ---------------------------------------------------------------------

    async def _decide(self, event: PublishRequested) -> None:
        try:
            await self._try_publish(event)
        except StorageError as e:
            # The metadata store is unreachable (a database restart): running pushes go on,
            # new ones are refused until it is back; encoders retry.
            self._log("publish refused: metadata store unavailable: %s", e)
            if self.push_id and self.push is None:
                self._spawn(record_end(self.deps, self.push_id, self.deps.now_ms(), self._log))
            self._refuse(REJECTED, STORE_UNAVAILABLE, "store_unavailable")
        except Exception:
            log.exception("publish of %s/%s failed", self.bucket, self.channel)
            if self.push_id and self.push is None:
                await self.deps.store.end_push(self.push_id, self.deps.now_ms())
            self._refuse("NetStream.Publish.Rejected", "internal error", "internal")

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
        push = admission.push
        self.bucket, self.channel, self.push_id = push.bucket, push.channel, push.push_id
        self.push = live = await LivePush.open(
            deps,
            admission,
            upload_budget=self.server.upload_budget,
            snapshot_slots=self.server.snapshot_slots,
            on_kick=self.kick,
            log_line=self._log,
        )
        if self.state is not EdgeState.DECIDING:  # the peer left (or we were kicked) meanwhile
            await self._end_push(live, "connection closed while deciding")
            return
        self._cancel_timers()
        self.conn.accept_publish(event.stream_id)
        metrics.accepted()
        self._log("publishing (playlist %s)", admission.playlist_name)
        self.state = EdgeState.PUBLISHING
        self._pace(live)
        self._resume()
        self._pump()

    def _pace(self, push: LivePush) -> None:
        """Read this publisher less often (ingest/reads.py; LL-HLS: away from its parts' ends)."""
        self.paced = True
        pipeline = push.pipeline
        self.low_latency = bool(pipeline.part_duration_ms)
        transport = self.transport
        if transport is None or transport.get_extra_info("sslcontext") is not None:
            return
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                self.batch = ReadBatch(sock, self.conn, pipeline.due_in_ms)
            except OSError:  # its descriptor is closed already: the peer is gone, no pacing
                self.batch = None

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
        push = self.push
        if self.state in TAKING_MEDIA and push is not None:
            self._log("disconnecting publisher: %s", reason, reason=reason)
            self.conn.set_media_sink(None)
            self.conn.send_status(self.stream_id, "error", "NetStream.Publish.Rejected", reason)
            self._flush()
            self.state = EdgeState.ENDING
            self._spawn(self._end_push(push, reason, close=True))
        elif self.state in NO_PUSH_YET:
            self._log("disconnecting publisher: %s", reason, reason=reason)
            self._close()

    def _unpublished(self) -> None:
        """The publisher unpublished (FCUnpublish / deleteStream): end the push but keep the
        socket. Clients send more commands after FCUnpublish and treat a close from our side
        as an error (GStreamer rtmp2sink); they close it, or we do after UNPUBLISHED_LINGER_S."""
        assert self.push is not None
        self.state = EdgeState.UNPUBLISHED
        self._spawn(self._end_push(self.push, "unpublished"))
        self._later(UNPUBLISHED_LINGER_S, self._close)

    async def _end_push(self, push: LivePush, reason: str, *, close: bool = False) -> None:
        try:
            if close:
                self._close_after_status()
            await push.end(reason)
        finally:
            # Only now: shutdown waits on `finished` for the flush, not for the socket.
            if not self.finished.done():
                self.finished.set_result(None)

    # --- webhooks ---------------------------------------------------------------------------

    async def _ask_hook(self, bucket: str, channel: str, params: Mapping[str, str]) -> str | None:
        assert self.deps.webhooks is not None
        return await self.deps.webhooks.ask_publish(bucket, channel, self.peer, params)

    # --- plumbing ---------------------------------------------------------------------------

    def _spawn(self, coro: Coroutine[object, object, None]) -> None:
        """Run `coro` in the background, referenced until done (the loop keeps only a weak
        reference, so an unreferenced task may be collected mid-flight)."""
        task = asyncio.get_running_loop().create_task(coro)
        self.server.tasks.add(task)
        task.add_done_callback(self.server.tasks.discard)

    def _later(self, delay_s: float, callback: Callable[[], None]) -> None:
        self._timers.append(asyncio.get_running_loop().call_later(delay_s, callback))

    def _cancel_timers(self) -> None:
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()

    def _deadline(self, what: str) -> None:
        if self.state in NO_PUSH_YET:
            self._log("closing: no %s within the time limit", what)
            self._close()

    def _flush(self) -> None:
        """Write what the core queued, unless the socket can no longer take it (closed, or
        our FIN is out: asyncio refuses a write after write_eof())."""
        data = self.conn.data_to_send()
        transport = self.transport
        if not data or transport is None or self.state in (EdgeState.LINGERING, EdgeState.CLOSED):
            return
        if not transport.is_closing():
            transport.write(data)

    def _close(self) -> None:
        self.state = EdgeState.CLOSED
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    def _close_after_status(self) -> None:
        """Send what is queued, then FIN; close for good when the publisher does or after
        KICK_LINGER_S (media still arriving meanwhile is dropped unread)."""
        transport = self.transport
        if self.state is EdgeState.CLOSED or transport is None or transport.is_closing():
            return
        if not transport.can_write_eof():
            self._close()
            return
        transport.write_eof()
        self.state = EdgeState.LINGERING
        self._later(KICK_LINGER_S, self._close)

    def pause(self) -> None:
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
