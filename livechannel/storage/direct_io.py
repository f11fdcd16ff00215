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
    flags = fcntl.fcntl(fd, fcntl.F_GETFL)
    try:
        fcntl.fcntl(fd, fcntl.F_SETFL, flags | os.O_DIRECT)
        _write_pieces(fd, pieces)
    except OSError as e:
        if e.errno != errno.EINVAL:
            raise
        # Refused at F_SETFL, or at the first write where the device wants a larger
        # alignment than ALIGN: start over the buffered way.
        fcntl.fcntl(fd, fcntl.F_SETFL, flags)
        os.ftruncate(fd, 0)
        return False
    return True


def _buffer() -> mmap.mmap:
    buf: mmap.mmap | None = getattr(_local, "buffer", None)
    if buf is None:
        buf = _local.buffer = mmap.mmap(-1, BUFFER_BYTES)  # anonymous, so page-aligned
    return buf


def _write_pieces(fd: int, pieces: Sequence[bytes | bytearray | memoryview]) -> None:
    with memoryview(_buffer()) as view:
        offset = filled = 0  # offset: where the buffer goes in the file (BUFFER_BYTES steps)
        for piece in pieces:
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
        if filled:
            padded = -(-filled // ALIGN) * ALIGN
            view[filled:padded] = bytes(padded - filled)
            _write_at(fd, view[:padded], offset)
            os.ftruncate(fd, offset + filled)


def _write_at(fd: int, data: memoryview, offset: int) -> None:
    while data:  # a short write of a direct write ends on a block boundary: go on from there
        n = os.pwrite(fd, data, offset)
        if n == 0:  # never for a regular file; retrying would spin forever
            raise OSError(errno.EIO, "the file took no bytes")
        data = data[n:]
        offset += n
