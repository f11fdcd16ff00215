"""The waiting side of LL-HLS: a push's `LowLatencyPlaylist` (low_latency.py) plus the
players waiting on it (blocking playlist reloads, preload-hinted parts), and the registry of
this process's LL-HLS pushes that the HTTP API looks them up in."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from livechannel.hls.low_latency import LivePart, LowLatencyPlaylist

BLOCK_TIMEOUT_TARGETS = 3  # RFC 8216bis 6.2.5.2: no answer within three targets is a 503


class LiveEndpoint:
    """A push's LL-HLS state plus the waiting players do on it (blocking reloads, preload
    hints). Every change wakes the waiters, which re-check their condition."""

    def __init__(self, state: LowLatencyPlaylist, channel: str, playlist_name: str) -> None:
        self.state = state
        self.channel = channel
        self.playlist_name = playlist_name
        self._changed = asyncio.Event()

    def changed(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    @property
    def block_timeout_s(self) -> float:
        return BLOCK_TIMEOUT_TARGETS * self.state.target_s

    async def wait_until(self, condition: Callable[[], bool], timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while not condition():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            event = self._changed
            try:
                await asyncio.wait_for(event.wait(), remaining)
            except TimeoutError:
                return condition()
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
