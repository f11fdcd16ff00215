"""The buffer-pinning attack on the RTMP port, for the tests and the soak.

A client that never authenticates opens one large message on a chunk stream and then sends,
round after round, one 4 KiB chunk of it followed by ~250 KiB of other, complete messages (of
a type the server ignores). A reader that kept the partial message as slices of the buffers
it was fed would pin each round's whole buffer while counting only the 4 KiB slice; ours
copies, so the connection holds what `max_partial_bytes` counts.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

from livechannel.rtmp import handshake
from livechannel.rtmp.chunk import ChunkWriter
from livechannel.rtmp.messages import MessageType, u32_body

CHUNK_BYTES = 4096  # the attacker's chunk size: one chunk of the partial message per round
OTHER_BYTES = 250 * 1024  # complete messages between two chunks of the partial one
PARTIAL_CSID, OTHER_CSID = 10, 11
SHARED_OBJECT = 19  # AMF0 shared object: a type the server reads and ignores
MESSAGE_BYTES = 8 * 1024 * 1024 - 1024  # the partial message: under the 8 MiB default limit


def preamble() -> tuple[bytes, ChunkWriter]:
    """C0+C1, C2 and Set Chunk Size: everything before the first round (no connect)."""
    writer = ChunkWriter()
    c0c1 = handshake.client_c0_c1(style="simple", time_ms=0, random=bytes(1528))
    c2 = bytes(handshake.HANDSHAKE_SIZE)
    head = writer.encode(2, 0, MessageType.SET_CHUNK_SIZE, 0, u32_body(CHUNK_BYTES))
    writer.chunk_size = CHUNK_BYTES
    return c0c1 + c2 + head, writer


def rounds(writer: ChunkWriter, count: int) -> Iterator[bytes]:
    """`count` rounds: the first opens the partial message, each carries one chunk of it."""
    if count * CHUNK_BYTES >= MESSAGE_BYTES:
        raise ValueError("that many rounds would complete the partial message")
    big = writer.encode(PARTIAL_CSID, 0, MessageType.VIDEO, 1, bytes(MESSAGE_BYTES))
    first = len(big) - MESSAGE_BYTES - (-(-MESSAGE_BYTES // CHUNK_BYTES) - 1)  # header bytes
    filler = b"".join(
        writer.encode(OTHER_CSID, 0, SHARED_OBJECT, 0, bytes(CHUNK_BYTES))
        for _ in range(OTHER_BYTES // CHUNK_BYTES)
    )
    yield big[: first + CHUNK_BYTES] + filler
    step = 1 + CHUNK_BYTES
    for n in range(count - 1):
        pos = first + CHUNK_BYTES + n * step
        yield big[pos : pos + step] + filler


def attack(port: int, count: int, host: str = "127.0.0.1") -> socket.socket:
    """Open a connection and send `count` rounds; the socket is left open (the caller closes
    it). The server's handshake reply is read and dropped as it comes."""
    sock = socket.create_connection((host, port), timeout=10)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 16)
    head, writer = preamble()
    sock.sendall(head)
    for data in rounds(writer, count):
        sock.sendall(data)
    return sock
