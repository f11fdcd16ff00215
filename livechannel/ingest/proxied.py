"""The asyncio side of the PROXY protocol: read the header, then hand the connection on.

With `proxy_protocol` enabled on a listener, every connection must start with a PROXY
header (proxy_protocol.py); the inner protocol (the RTMP edge, or the shared port's sniffer)
is created only once it has been read, and sees a transport whose `peername` is the client's
address from the header. So the connection caps per address, the push records, Stat's
RemoteAddr and every log line name the real client, not the load balancer.

The header is read under the handshake timeout and a size cap; a connection without a valid
one is closed (logged), as HAProxy's own `accept-proxy` does.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, cast

from livechannel.ingest.proxy_protocol import ProxyHeaderError, parse

log = logging.getLogger("livechannel.ingest.proxy")


class ProxiedTransport:
    """The real transport, except for `peername`; `set_protocol` re-routes our relay."""

    def __init__(self, transport: asyncio.Transport, peer: Any, relay: ProxyProtocolReader):
        self._transport = transport
        self._peer = peer
        self._relay = relay

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "peername":
            return self._peer
        return self._transport.get_extra_info(name, default)

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._relay.inner = cast(asyncio.Protocol, protocol)

    def get_protocol(self) -> asyncio.BaseProtocol | None:
        return self._relay.inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class ProxyProtocolReader(asyncio.Protocol):
    def __init__(self, inner_factory: Callable[[], asyncio.Protocol], timeout_s: float) -> None:
        self._factory = inner_factory
        self._timeout_s = timeout_s
        self.inner: asyncio.Protocol | None = None
        self._transport: asyncio.Transport | None = None
        self._buffer = b""
        self._timer: asyncio.TimerHandle | None = None
        self._peer = "?"

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername") or ("?", 0)
        self._peer = f"{peer[0]}:{peer[1]}"
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(self._timeout_s, self._refuse, "no PROXY header in time")

    def data_received(self, data: bytes) -> None:
        if self.inner is not None:
            self.inner.data_received(data)
            return
        assert self._transport is not None
        self._buffer += data
        try:
            header = parse(self._buffer)
        except ProxyHeaderError as e:
            self._refuse(str(e))
            return
        if header is None:
            return
        if self._timer is not None:
            self._timer.cancel()
        rest, self._buffer = self._buffer[header.length :], b""
        peer = header.source or self._transport.get_extra_info("peername")
        inner = self.inner = self._factory()
        proxied = ProxiedTransport(self._transport, peer, self)
        inner.connection_made(cast(asyncio.Transport, proxied))
        if rest and self.inner is not None and not self._transport.is_closing():
            self.inner.data_received(rest)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received() if self.inner is not None else None

    def pause_writing(self) -> None:
        if self.inner is not None:
            self.inner.pause_writing()

    def resume_writing(self) -> None:
        if self.inner is not None:
            self.inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self.inner is not None:
            self.inner.connection_lost(exc)

    def _refuse(self, why: str) -> None:
        log.info("closing %s: %s", self._peer, why)
        if self._transport is not None:
            self._transport.abort()
