"""A loopback TCP proxy that a test controls: forward, blackhole or refuse, switchable live.

- FORWARD: bytes flow both ways.
- BLACKHOLE: connections are accepted (new and old) but nothing flows either way: requests
  time out, as when a route or a store's frontend dies silently.
- REFUSE: new connections are reset at once and open ones are cut, as when the store's
  process is down.

Runs its own event loop in a thread; every connection it accepted or opened is closed by
`stop()`, which keeps the loop running until each connection's handler has ended: a transport
left open when the loop stops is only found by the garbage collector, later, in whichever test
happens to be running then (an "unclosed transport" ResourceWarning, an error under pytest).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import socket
import struct
import threading

RELAY_BYTES = 64 * 1024  # one read per hop
HEAD_BYTES = 2048  # how much of each client->server read is kept for `saw` (request heads)
MAX_LOG_BYTES = 4 * 1024 * 1024  # bound on the kept request heads
STOP_TIMEOUT_S = 10.0  # for the handlers to end once every connection was reset


class Mode(enum.Enum):
    FORWARD = "forward"
    BLACKHOLE = "blackhole"
    REFUSE = "refuse"


class TcpProxy:
    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self.mode = Mode.FORWARD
        self.connections = 0
        self.upstream_bytes = 0  # server -> client bytes forwarded
        self._log = bytearray()
        self._loop = asyncio.new_event_loop()
        self._writers: set[asyncio.StreamWriter] = set()
        self._mode_changed: asyncio.Event | None = None
        self._server: asyncio.Server | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tcp proxy", daemon=True)
        self.port = 0

    # --- control (from the test's thread) -------------------------------------------------
    def start(self) -> TcpProxy:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("proxy did not start")
        return self

    def set_mode(self, mode: Mode) -> None:
        def apply() -> None:
            self.mode = mode
            assert self._mode_changed is not None
            self._mode_changed.set()
            self._mode_changed = asyncio.Event()
            if mode is Mode.REFUSE:
                for writer in list(self._writers):
                    _reset(writer)

        self._loop.call_soon_threadsafe(apply)

    def saw(self, needle: bytes) -> bool:
        """Whether any client->server request head contained `needle` (case-insensitive)."""
        return needle.lower() in bytes(self._log).lower()

    def stop(self) -> None:
        if self._thread.is_alive():
            future = asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop)
            future.result(2 * STOP_TIMEOUT_S)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)

    async def _shutdown(self) -> None:
        """Refuse from now on, wait until no handler runs, and only then stop listening.

        Resetting the writers known now is not enough: a connection the loop accepted a
        moment ago has a transport but no handler yet (asyncio starts it a few callbacks
        later), and closing the server first is worse: Python 3.11 then fails to build the
        transport of a connection already taken from the listening socket, and leaves that
        half-built transport (its socket open) to the garbage collector. So the listener
        closes in the same step that found no task left: nothing was accepted in between."""
        assert self._server is not None and self._mode_changed is not None
        self.mode = Mode.REFUSE
        self._mode_changed.set()  # wake handlers held by a blackhole: they see REFUSE
        for writer in list(self._writers):
            _reset(writer)
        deadline = self._loop.time() + STOP_TIMEOUT_S
        while others := asyncio.all_tasks() - {asyncio.current_task()}:
            timeout_s = deadline - self._loop.time()
            if timeout_s <= 0:
                break
            await asyncio.wait(others, timeout=timeout_s)
        self._server.close()

    # --- the loop -------------------------------------------------------------------------
    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)

        async def listen() -> None:
            self._mode_changed = asyncio.Event()
            self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
            self.port = self._server.sockets[0].getsockname()[1]

        self._loop.run_until_complete(listen())
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            self._loop.run_until_complete(self._loop.shutdown_asyncgens())
            self._loop.close()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        if self.mode is Mode.REFUSE:
            _reset(writer)
            return
        self._writers.add(writer)
        try:
            while self.mode is Mode.BLACKHOLE:  # hold it, answer nothing
                await self._wait_mode()
            if self.mode is Mode.REFUSE:
                _reset(writer)
                return
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except (OSError, asyncio.CancelledError):
            self._writers.discard(writer)
            _reset(writer)
            return
        if self.mode is Mode.REFUSE:  # set (or stopped) while connecting upstream
            self._writers.discard(writer)
            _reset(writer)
            _reset(up_writer)
            return
        self._writers.add(up_writer)
        try:
            await asyncio.gather(
                self._relay(reader, up_writer, to_server=True),
                self._relay(up_reader, writer, to_server=False),
            )
        finally:
            for w in (writer, up_writer):
                self._writers.discard(w)
                w.close()

    async def _wait_mode(self) -> None:
        assert self._mode_changed is not None
        await self._mode_changed.wait()

    async def _relay(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, to_server: bool
    ) -> None:
        try:
            while True:
                data = await reader.read(RELAY_BYTES)
                if not data:
                    break
                while self.mode is Mode.BLACKHOLE:
                    await self._wait_mode()  # hold the bytes: nothing gets through
                if self.mode is Mode.REFUSE:
                    break
                if to_server:
                    if len(self._log) < MAX_LOG_BYTES:
                        self._log += data[:HEAD_BYTES]
                else:
                    self.upstream_bytes += len(data)
                writer.write(data)
                await writer.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            with contextlib.suppress(OSError, RuntimeError):
                writer.close()


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with RST (SO_LINGER 0): what a peer whose process died sends. `abort`, not
    `close`: a close waits until the write buffer drained, forever if the peer reads nothing."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError, RuntimeError):
        writer.transport.abort()
