"""Writing media objects past the page cache (O_DIRECT).

A segment is written once and, on a live origin, read a few times within seconds or never.
A buffered write copies it into the page cache, where it waits, dirty, for the kernel's
flusher: at 200 publishers (67 MB/s) dirty pages pass vm.dirty_background_ratio (10 % of RAM)
after ~35 s and go out in one burst that every writer waits behind (playlist p99 90 ms in
90 s trials); and on a VM that returns free memory to its host, each new page-cache page
is also a host page fault (~380 MB/s per core of copying on this project's dev box). With
O_DIRECT the block device reads our buffer itself: nothing is copied into the cache, nothing
dirty is left for a burst, and the write takes the device's time in a storage thread, never
the event loop's. Measured side by side: docs/performance.md, "Direct writes".

O_DIRECT needs the buffer address, the file offset and the length aligned to the device's
logical block size. Pieces are copied into one page-aligned buffer per storage thread and
written a buffer at a time; the last block is padded with zeros and the file truncated back
to its size. Where the filesystem refuses O_DIRECT (EINVAL: tmpfs on older kernels, some
FUSE and network filesystems) the caller writes the buffered way instead.
"""

from __future__ import annotations

import errno
import fcntl
import mmap
import os
import threading
from collections.abc import Sequence

# Logical block sizes are 512 or 4096 bytes; offsets and lengths in 4096s suit both.
ALIGN = 4096
# The aligned buffer of one storage thread: a 2 MB segment takes two writes, and the default
# executor's threads (min(32, cores + 4)) hold at most 32 MiB between them.
BUFFER_BYTES = 1024 * 1024

_local = threading.local()


def write(fd: int, pieces: Sequence[bytes | bytearray | memoryview]) -> bool:
    """Write `pieces` to the new, empty file `fd` with O_DIRECT. False, with the file still
    empty and O_DIRECT off again, where the filesystem does not take direct writes."""
    if not enable(fd):
        return False
    try:
        write_blocks(fd, pieces, 0, final=True)
    except OSError as e:
        if e.errno != errno.EINVAL:
            raise
        # The device wants a larger alignment than ALIGN: start over the buffered way.
        disable(fd)
        os.ftruncate(fd, 0)
        return False
    return True


def enable(fd: int) -> bool:
    """Turn O_DIRECT on for `fd`; False where the filesystem refuses it at once (EINVAL).
    A device may still refuse the first write (EINVAL): the caller then `disable`s it."""
    flags = fcntl.fcntl(fd, fcntl.F_GETFL)
    try:
        fcntl.fcntl(fd, fcntl.F_SETFL, flags | os.O_DIRECT)
    except OSError as e:
        if e.errno != errno.EINVAL:
            raise
        return False
    return True


def disable(fd: int) -> None:
    fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_DIRECT)


def _buffer() -> mmap.mmap:
    buf: mmap.mmap | None = getattr(_local, "buffer", None)
    if buf is None:
        buf = _local.buffer = mmap.mmap(-1, BUFFER_BYTES)  # anonymous, so page-aligned
    return buf


def write_blocks(
    fd: int, pieces: Sequence[bytes | bytearray | memoryview], offset: int, *, final: bool
) -> tuple[int, bytes]:
    """Write `pieces` at `offset` (a multiple of ALIGN) in whole blocks, copied through this
    thread's aligned buffer. Returns (the offset after the last whole block, the bytes of
    the partial block after it), which the caller passes first next time. `final`: the
    partial block is written too, padded with zeros, and the file truncated to its true
    end; the returned offset is then that end. A failed call changed nothing the caller
    relies on: calling again with the same arguments writes the same blocks."""
    with memoryview(_buffer()) as view:
        filled = 0  # bytes in the buffer; the buffer goes to the file at `offset`
        for piece in pieces:
            size = len(piece)
            if filled + size < BUFFER_BYTES:  # nearly every piece (a frame's TS): one copy
                view[filled : filled + size] = piece
                filled += size
                continue
            data = memoryview(piece)
            while data:
                n = min(len(data), BUFFER_BYTES - filled)
                view[filled : filled + n] = data[:n]
                filled += n
                data = data[n:]
                if filled == BUFFER_BYTES:
                    _write_at(fd, view, offset)
                    offset += BUFFER_BYTES
                    filled = 0
        if final:
            if filled:
                padded = -(-filled // ALIGN) * ALIGN
                view[filled:padded] = bytes(padded - filled)
                _write_at(fd, view[:padded], offset)
                os.ftruncate(fd, offset + filled)
            return offset + filled, b""
        whole = filled - filled % ALIGN
        if whole:
            _write_at(fd, view[:whole], offset)
        return offset + whole, bytes(view[whole:filled])


def _write_at(fd: int, data: memoryview, offset: int) -> None:
    while data:  # a short write of a direct write ends on a block boundary: go on from there
        n = os.pwrite(fd, data, offset)
        if n == 0:  # never for a regular file; retrying would spin forever
            raise OSError(errno.EIO, "the file took no bytes")
        data = data[n:]
        offset += n
