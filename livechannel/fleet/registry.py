"""The publishers this process holds, and their heartbeat to the shared metadata store.

"One publisher per channel" is decided by the store (start_push is atomic); this registry only
keeps the local handles so that (a) a disable through this process's API kicks at once,
(b) every KICK_POLL_INTERVAL_S one read-only query learns whether another process's API
disabled one of our pushes (the store's `kick` flag; the same path works across workers and
machines), and (c) every HEARTBEAT_INTERVAL_S each live push's figures are written, all of
this process's pushes in one transaction. It also writes #EXT-X-ENDLIST once a publisher
has been gone for the grace period.

On PostgreSQL the kick flag also arrives as a notice (LISTEN/NOTIFY, `on_notice`) within
milliseconds of the disable's commit; while the notice session is up (`Signals.connected`) the
kick polls between heartbeats are skipped, and the heartbeat (which returns the same flags)
remains the backstop. When the session is lost the polls resume until it is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Callable
from typing import Protocol

from livechannel.errors import StorageError
from livechannel.hls.live_playlist import LivePlaylist, end_playlist
from livechannel.ops.faults import RepeatedFault
from livechannel.store.base import MetadataStore

log = logging.getLogger("livechannel.fleet.registry")

# A disable through another worker (SQLite: no notices) kicks within 1 s (docs/api.md): half
# a second and the query. Each poll while pushes run is a store thread hop and a wake-up of
# the event loop; at 0.25 s they were ~8 of a quiet worker's ~40 wake-ups a second.
KICK_POLL_INTERVAL_S = 0.5
# Live figures (GetLiveChannelStat) are at most this old; 5 beats fit in the 5 s stale limit.
# Writing every push's figures on every kick poll instead cost ~5 % of a worker's CPU.
HEARTBEAT_INTERVAL_S = 1.0
END_RETRY_S = 1.0  # an #EXT-X-ENDLIST that could not be written is tried again this often
POLLS_PER_HEARTBEAT = round(HEARTBEAT_INTERVAL_S / KICK_POLL_INTERVAL_S)
# A push of ours that the store no longer has running was ended by a stale-push sweep: this
# process's heartbeats came too late (overloaded, or paused) and the channel was freed.
ENDED_BY_SWEEP = "the push was ended: this server's heartbeat was late (overloaded?)"


class Signals(Protocol):
    """A cross-node notice channel (the PostgreSQL store's listener)."""

    @property
    def connected(self) -> bool: ...


class LiveSession(Protocol):
    bucket: str
    channel: str
    push_id: int

    def stats_json(self, now_ms: int) -> str: ...
    def last_media_ms(self) -> int: ...
    def kick(self, reason: str) -> None: ...


class Registry:
    def __init__(
        self,
        store: MetadataStore,
        *,
        now_ms: Callable[[], int],
        idle_timeout_s: float,
        end_grace_s: float,
    ) -> None:
        self.store = store
        self.now_ms = now_ms
        self.idle_timeout_ms = int(idle_timeout_s * 1000)
        self.end_grace_s = end_grace_s
        self.sessions: dict[tuple[str, str], LiveSession] = {}
        self._end_timers: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._task: asyncio.Task[None] | None = None
        # How late the latest kick poll or heartbeat finished, against when it was due: event
        # loop lag plus the metadata store's round trip. The overload signal (ingest refuses
        # new publishes past `Limits.max_heartbeat_lag_s`).
        self.lag_s = 0.0
        self._heartbeat_fault = RepeatedFault(log, "the heartbeat")
        self.signals: Signals | None = None  # set by server.py where the store has notices
        self._poll_now = False  # a notice session came back: poll once, notices were missed

    def on_notice(self, notice: dict[str, object]) -> None:
        """A notice from another node (or this one): kick the named push if it runs here."""
        if notice.get("kind") != "kick":
            return
        push_id = notice.get("push_id")
        for session in list(self.sessions.values()):
            if session.push_id == push_id:
                session.kick("channel disabled")

    def on_reconnect(self) -> None:
        self._poll_now = True

    def add(self, session: LiveSession) -> None:
        key = (session.bucket, session.channel)
        self.sessions[key] = session
        timer = self._end_timers.pop(key, None)
        if timer is not None:
            timer.cancel()

    def remove(self, session: LiveSession) -> None:
        key = (session.bucket, session.channel)
        if self.sessions.get(key) is session:
            del self.sessions[key]

    def kick(self, bucket: str, channel: str, reason: str = "channel disabled") -> None:
        session = self.sessions.get((bucket, channel))
        if session is not None:
            session.kick(reason)

    def schedule_endlist(self, playlist: LivePlaylist, delay_s: float | None = None) -> None:
        """After the grace period (or `delay_s`), unless a publisher came back here or
        elsewhere, rewrite the channel's live playlist with #EXT-X-ENDLIST."""
        bucket, channel = playlist.bucket, playlist.channel
        key = (bucket, channel)
        old = self._end_timers.pop(key, None)
        if old is not None:
            old.cancel()

        async def fire() -> None:
            await asyncio.sleep(self.end_grace_s if delay_s is None else delay_s)
            try:
                for attempt in itertools.count():
                    try:
                        if key in self.sessions or await self.store.live_push(bucket, channel):
                            return  # republished here or elsewhere; that push owns it now
                        await end_playlist(self.store, playlist)
                        return
                    except StorageError as e:  # the store or storage is down: try again
                        if attempt == 0:
                            log.warning("ending the playlist of %s/%s waits: %s", bucket,
                                        channel, e)  # fmt: skip
                        await asyncio.sleep(END_RETRY_S)
            except Exception:
                log.exception("could not end the playlist of %s/%s", bucket, channel)
            finally:
                self._end_timers.pop(key, None)

        self._end_timers[key] = asyncio.create_task(fire(), name=f"endlist {bucket}/{channel}")

    def start(self) -> None:
        self._task = asyncio.create_task(self._heartbeat_loop(), name="registry heartbeat")

    async def stop(self) -> None:
        tasks = [t for t in (self._task, *self._end_timers.values()) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._end_timers.clear()

    async def _heartbeat(self, sessions: list[LiveSession], now: int) -> dict[int, bool]:
        beats = [(session.push_id, session.stats_json(now)) for session in sessions]
        # One transaction for all of this process's pushes: one await per push made a round
        # outlast the stale limit at ~300 publishers, and live pushes got swept.
        refreshed = await self.store.heartbeat_many(beats, now)
        return {push_id: push.kick for push_id, push in refreshed.items()}

    async def _heartbeat_loop(self) -> None:
        loop = asyncio.get_running_loop()
        for poll in itertools.count(1):
            due_s = loop.time() + KICK_POLL_INTERVAL_S
            await asyncio.sleep(KICK_POLL_INTERVAL_S)
            now = self.now_ms()
            sessions = list(self.sessions.values())
            notified = self.signals is not None and self.signals.connected
            if poll % POLLS_PER_HEARTBEAT and notified and not self._poll_now:
                self.lag_s = loop.time() - due_s  # kicks come as notices: nothing to ask
                continue
            self._poll_now = False
            try:
                if poll % POLLS_PER_HEARTBEAT:
                    running = await self.store.running_pushes([s.push_id for s in sessions])
                else:
                    running = await self._heartbeat(sessions, now)
            except Exception:
                self._heartbeat_fault.failed(f"for {len(sessions)} pushes")
                continue
            finally:
                self.lag_s = loop.time() - due_s
            self._heartbeat_fault.succeeded()
            for session in sessions:
                kicked = running.get(session.push_id)
                if kicked is None:
                    session.kick(ENDED_BY_SWEEP)
                elif kicked:
                    session.kick("channel disabled")
                elif now - session.last_media_ms() > self.idle_timeout_ms:
                    session.kick(f"no media for {self.idle_timeout_ms // 1000} s")
