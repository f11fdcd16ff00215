"""RTMP and HTTP on one port: the first byte decides.

`oss2.Bucket.sign_rtmp_url` puts the HTTP endpoint's port into the RTMP URL, so serving RTMP
on the HTTP port makes its URLs work unchanged. An RTMP connection starts with C0 = 0x03 (the
version byte); an HTTP request starts with a method name (a letter).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import cast

RTMP_VERSION_BYTE = 3


class SniffingProtocol(asyncio.Protocol):
    def __init__(
        self,
        rtmp: Callable[[], asyncio.Protocol],
        http: Callable[[], asyncio.Protocol],
    ) -> None:
        self._rtmp, self._http = rtmp, http
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        transport = cast(asyncio.Transport, transport)
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        assert self._transport is not None
        inner = self._rtmp() if data[0] == RTMP_VERSION_BYTE else self._http()
        self._transport.set_protocol(inner)
        inner.connection_made(self._transport)
        inner.data_received(data)

    def connection_lost(self, exc: Exception | None) -> None:
        pass  # closed before the first byte: nothing was handed over
