"""The waiting side of LL-HLS: a push's `LowLatencyPlaylist` (low_latency.py) plus the
players waiting on it (blocking playlist reloads, preload-hinted parts), and the registry of
this process's LL-HLS pushes that the HTTP API looks them up in."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from livechannel.hls.low_latency import LivePart, LowLatencyPlaylist

BLOCK_TIMEOUT_TARGETS = 3  # RFC 8216bis 6.2.5.2: no answer within three targets is a 503


class LiveEndpoint:
    """A push's LL-HLS state plus the waiting players do on it (blocking reloads, preload
    hints). Every change wakes the waiters, which re-check their condition.

    A waiter is a bare future that `changed()` resolves, so its handler runs in the event
    loop's next turn. `asyncio.wait_for` on an `Event` would take three turns (the event's
    task, wait_for's callback, the handler), and with a few hundred pushes a turn is a whole
    round of socket reads: the blocking reload's answer would come that much later."""

    def __init__(self, state: LowLatencyPlaylist, channel: str, playlist_name: str) -> None:
        self.state = state
        self.channel = channel
        self.playlist_name = playlist_name
        self._waiters: set[asyncio.Future[None]] = set()

    def changed(self) -> None:
        waiters, self._waiters = self._waiters, set()
        for waiter in waiters:
            _wake(waiter)

    @property
    def block_timeout_s(self) -> float:
        return BLOCK_TIMEOUT_TARGETS * self.state.target_s

    async def wait_until(self, condition: Callable[[], bool], timeout_s: float) -> bool:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while not condition():
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            waiter = loop.create_future()
            self._waiters.add(waiter)
            timer = loop.call_later(remaining, _wake, waiter)
            try:
                await waiter
            finally:
                timer.cancel()
                self._waiters.discard(waiter)  # timed out or cancelled: not woken by changed()
        return True

    async def playlist(self, msn: int | None, part: int | None, skip: bool) -> str | None:
        """The playlist once it satisfies the request; None after the block timeout."""
        self.state.check(msn, part)
        ready = await self.wait_until(lambda: self.state.satisfied(msn, part), self.block_timeout_s)
        return self.state.render(skip=skip) if ready else None

    async def part(self, number: int) -> LivePart | None:
        """A listed part, or the hinted next one once it exists (None: not here)."""
        state = self.state
        if number == state.next_part:
            await self.wait_until(
                lambda: number < state.next_part or state.finished, self.block_timeout_s
            )
        return state.part(number)


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class LowLatencyRegistry:
    """Which pushes of this process serve LL-HLS, by bucket and channel."""

    def __init__(self) -> None:
        self._live: dict[tuple[str, str], LiveEndpoint] = {}

    def add(self, bucket: str, endpoint: LiveEndpoint) -> None:
        self._live[(bucket, endpoint.channel)] = endpoint

    def remove(self, bucket: str, endpoint: LiveEndpoint) -> None:
        if self._live.get((bucket, endpoint.channel)) is endpoint:
            del self._live[(bucket, endpoint.channel)]

    def find(self, bucket: str, key: str) -> LiveEndpoint | None:
        channel, slash, _ = key.partition("/")
        return self._live.get((bucket, channel)) if slash else None

    def __len__(self) -> int:
        return len(self._live)
