"""RTMP and HTTP on one port: the first byte decides.

`oss2.Bucket.sign_rtmp_url` puts the HTTP endpoint's port into the RTMP URL, so serving RTMP
on the HTTP port makes its URLs work unchanged. An RTMP connection starts with C0 = 0x03 (the
version byte); an HTTP request starts with a method name (a letter).

Every connection on this port passes the process's `ConnectionGate` (total and per-address
caps). RTMP connections are counted by the RTMP protocol itself once handed over; HTTP ones
stay counted here until they close. A connection that sends nothing is closed after
`first_byte_timeout_s` (a port scan or a half-open socket must not hold a descriptor).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import cast

from livechannel.ingest.gate import ConnectionGate

log = logging.getLogger("livechannel.ingest.sniff")

RTMP_VERSION_BYTE = 3
# Real clients send their first byte at once (C0 or the request line); 10 s is generous.
FIRST_BYTE_TIMEOUT_S = 10.0


class SniffingProtocol(asyncio.Protocol):
    def __init__(
        self,
        rtmp: Callable[[], asyncio.Protocol],
        http: Callable[[], asyncio.Protocol],
        gate: ConnectionGate | None = None,
        first_byte_timeout_s: float = FIRST_BYTE_TIMEOUT_S,
    ) -> None:
        self._rtmp, self._http = rtmp, http
        self._gate = gate if gate is not None else ConnectionGate(2**31, 2**31)
        self._first_byte_timeout_s = first_byte_timeout_s
        self._transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._ip = "?"
        self._admitted = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        transport = cast(asyncio.Transport, transport)
        self._transport = transport
        peer = transport.get_extra_info("peername") or ("?", 0)
        self._ip = str(peer[0])
        refusal = self._gate.admit(self._ip)
        if refusal is not None:
            log.info("refused %s:%s: %s", peer[0], peer[1], refusal)
            transport.abort()
            return
        self._admitted = True
        self._timer = asyncio.get_running_loop().call_later(
            self._first_byte_timeout_s, self._silent, f"{peer[0]}:{peer[1]}"
        )

    def data_received(self, data: bytes) -> None:
        assert self._transport is not None
        if not self._admitted:
            return
        if self._timer is not None:
            self._timer.cancel()
        inner: asyncio.Protocol
        if data[0] == RTMP_VERSION_BYTE:
            self._release()  # the RTMP protocol passes the gate itself
            inner = self._rtmp()
        else:
            self._admitted = False  # the counted wrapper releases it from now on
            inner = _CountedConnection(self._http(), self._gate, self._ip)
        self._transport.set_protocol(inner)
        inner.connection_made(self._transport)
        inner.data_received(data)

    def connection_lost(self, exc: Exception | None) -> None:
        # Closed before the first byte: nothing was handed over.
        if self._timer is not None:
            self._timer.cancel()
        self._release()

    def _silent(self, peer: str) -> None:
        log.info("closing %s: nothing received within %.0f s", peer, self._first_byte_timeout_s)
        if self._transport is not None:
            self._transport.abort()

    def _release(self) -> None:
        if self._admitted:
            self._admitted = False
            self._gate.release(self._ip)


class _CountedConnection(asyncio.Protocol):
    """Forwards everything to `inner` and releases the gate when the connection ends."""

    def __init__(self, inner: asyncio.Protocol, gate: ConnectionGate, ip: str) -> None:
        self._inner, self._gate, self._ip = inner, gate, ip
        self._open = True

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received()

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._open:
            self._open = False
            self._gate.release(self._ip)
        self._inner.connection_lost(exc)
