"""HTTP clients that hold request slots: one that stops reading a large object, one that
trickles a request body. Used by the soak (scripts/soak.py); the same attacks, one at a time,
are in tests/robustness/test_limits.py."""

from __future__ import annotations

import asyncio
import contextlib
import socket

SMALL_RECEIVE_BUFFER_BYTES = 4096  # the kernel's floor: the server's sends stall at once
TRICKLE_INTERVAL_S = 1.0  # one body byte a second: alive, never done
DRAIN_TIMEOUT_S = 5.0
CONNECT_TIMEOUT_S = 5.0


async def _connect(port: int, source_ip: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SMALL_RECEIVE_BUFFER_BYTES)
    sock.bind((source_ip, 0))
    sock.setblocking(False)
    await asyncio.wait_for(
        asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port)), CONNECT_TIMEOUT_S
    )
    return await asyncio.open_connection(sock=sock)


async def stop_reading(port: int, source_ip: str, path: str, size: int, hold_s: float) -> str:
    """GET `path` (an object of `size` bytes), read nothing for `hold_s`, then drain: "cut off
    by server" when less than the whole object came before the connection ended."""
    try:
        reader, writer = await _connect(port, source_ip)
    except (OSError, TimeoutError):
        return "connect failed"
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        await asyncio.sleep(hold_s)
        received = 0
        with contextlib.suppress(OSError, TimeoutError):
            while chunk := await asyncio.wait_for(reader.read(1 << 20), DRAIN_TIMEOUT_S):
                received += len(chunk)
        return "cut off by server" if received < size else "served in full (never cut off)"
    finally:
        writer.close()


async def trickle_body(port: int, source_ip: str, path: str, deadline_s: float) -> str:
    """PUT `path` with a 1,000-byte body sent a byte a second: the answer's status line, or
    "no answer" by `deadline_s`."""
    try:
        reader, writer = await _connect(port, source_ip)
    except (OSError, TimeoutError):
        return "connect failed"
    try:
        writer.write(
            f"PUT {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000\r\n\r\n<".encode()
        )
        loop = asyncio.get_running_loop()
        end = loop.time() + deadline_s
        while loop.time() < end:
            try:
                line = await asyncio.wait_for(reader.readline(), TRICKLE_INTERVAL_S)
            except TimeoutError:
                with contextlib.suppress(OSError):
                    writer.write(b" ")
                continue
            body = await asyncio.wait_for(reader.read(4096), DRAIN_TIMEOUT_S)
            code = "RequestTimeout" if b"RequestTimeout" in body else "other"
            return f"{line.decode(errors='replace').split(' ', 2)[1]} {code}" if line else "closed"
        return "no answer"
    except OSError:
        return "closed"
    finally:
        writer.close()
