"""The RTMP edge driven without sockets: a real `IngestServer` and its protocol object over a
fake asyncio transport that behaves as the real one where it matters (writes after
`write_eof()` are an error, `close()` reports `connection_lost` on the next loop turn,
`pause_reading()` / `resume_reading()` are recorded), with a memory store and storage.

The publisher is our sans-IO `ClientConnection` (or a `ScriptedPeer`'s raw bytes); every
exchange hands the edge what the client queued and the client what the edge wrote.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from livechannel.config import Config, Limits
from livechannel.fleet.registry import Registry
from livechannel.ingest.edge import IngestDeps, IngestServer
from livechannel.rtmp.client import ClientConnection, ClientEvent
from livechannel.storage.memory import MemoryStorage
from livechannel.store.base import Acl, ChannelConfig
from livechannel.store.memory import MemoryStore

BUCKET, CHANNEL = "live", "cam"
SETTLE_TIMEOUT_S = 5.0  # everything here is in memory: settling takes milliseconds
PEER = ("127.0.0.1", 40000)


class FakeTransport:
    """What the edge may do to a socket, recorded."""

    def __init__(self, protocol: Any) -> None:
        self.protocol = protocol
        self.out = bytearray()
        self.reading = True
        self.eof_sent = False
        self.closed = False
        self.lost = False

    def write(self, data: bytes) -> None:
        if self.eof_sent:
            # What asyncio's selector transport raises (the loop then logs "Fatal error on
            # transport" at ERROR and aborts the connection).
            raise RuntimeError("Cannot call write() after write_eof()")
        if not self.closed:
            self.out += data

    def take(self) -> bytes:
        data = bytes(self.out)
        self.out.clear()
        return data

    def get_extra_info(self, name: str, default: object = None) -> object:
        return PEER if name == "peername" else default

    def is_closing(self) -> bool:
        return self.closed

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        self.eof_sent = True

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            asyncio.get_running_loop().call_soon(self._lost)

    abort = close

    def _lost(self) -> None:
        if not self.lost:
            self.lost = True
            self.protocol.connection_lost(None)

    def peer_closes(self) -> None:
        """The publisher's side closed the TCP connection."""
        self.closed = True
        self._lost()

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True


class EdgeHarness:
    """One IngestServer with one connection on a fake transport."""

    def __init__(self, server: IngestServer, store: MemoryStore, storage: MemoryStorage) -> None:
        self.server = server
        self.store = store
        self.storage = storage
        self.protocol = server.protocol()
        self.transport = FakeTransport(self.protocol)
        self.protocol.connection_made(self.transport)  # type: ignore[arg-type]
        self.client = ClientConnection(BUCKET, CHANNEL, f"rtmp://127.0.0.1/{BUCKET}")
        self.events: list[ClientEvent] = []

    @classmethod
    async def start(cls, limits: Limits | None = None, **channel: Any) -> EdgeHarness:
        store = await MemoryStore.open()
        await store.ensure_bucket(BUCKET, Acl.PUBLIC_READ_WRITE, 0)  # no signature needed
        await store.put_channel(BUCKET, CHANNEL, ChannelConfig(**channel), 0)
        storage = MemoryStorage()

        def now_ms() -> int:
            return time.time_ns() // 1_000_000

        config = Config() if limits is None else replace(Config(), limits=limits)
        registry = Registry(store, now_ms=now_ms, idle_timeout_s=30, end_grace_s=60)
        deps = IngestDeps(config, store, {BUCKET: storage}, {}, registry, "test", now_ms)
        return cls(IngestServer(deps), store, storage)

    async def stop(self) -> None:
        await self.server.close_all("test over")
        await self.server.deps.registry.stop()
        await asyncio.gather(*self.server.tasks, return_exceptions=True)
        await self.storage.close()

    def send(self, data: bytes) -> None:
        """Bytes from the publisher, as one read."""
        if data and not self.transport.closed:
            self.protocol.data_received(data)

    async def exchange(self) -> None:
        """One round trip: the client's queued bytes to the edge, the edge's answer back."""
        self.send(self.client.data_to_send())
        await asyncio.sleep(0)
        answer = self.transport.take()
        if answer:
            self.client.receive_data(answer)
        while (event := self.client.next_event()) is not None:
            self.events.append(event)

    async def until(self, done: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + SETTLE_TIMEOUT_S
        while not done():
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            await self.exchange()
            await asyncio.sleep(0.001)

    def statuses(self) -> list[str]:
        return [e.code for e in self.events if hasattr(e, "code")]
