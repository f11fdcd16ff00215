"""When a publishing connection is read next.

A read costs the event loop about the same whatever it carries (a wake-up, a system call, a
Python call: ~6-12 us at 200 publishers, bench/read_bench.py), and encoders and load
generators write every 10-33 ms: read per write, the reads alone were a fifth of what a
publisher costs us. So a publishing connection is read less often, two ways by how many
publishers the process has:

- **Few** (at most READ_REST_MAX_PUBLISHERS): a connection that was read *rests* (its reading
  paused) until the process's next tick, READ_REST_S; one tick resumes every resting
  connection together, so a quiet process wakes once per tick, not once per write (bench/idle.py).
  A connection rests by its mark (REST_MARK_BYTES, more than a rest brings), so a peer that
  closes meanwhile is seen at once; one without a batch (TLS) rests paused.
- **Many**: each connection's socket wakes us only once it holds READ_BATCH_S of its stream
  (SO_RCVLOWAT, socket(7); TCP's poll honours it). Nothing is paused, so no epoll change per
  read: pausing and resuming at 200 publishers cost more than the reads it saved
  (docs/performance.md, "Per-chunk and per-read cost").

Either way, what ends the open segment (the keyframe that cuts it) or, with LL-HLS, the open
part is read the moment it arrives, as with a read per write: the pipeline says how far ahead
in the stream that moment is (`due_in_ms`: from the last keyframes' interval, or the part
rule), and when it comes before the next batched read or tick would, the connection is read
by its mark (also while few publish), aimed half of the way there, then closer at each
read, down to one byte (a read per write) until it has come. While a video keyframe is
arriving the mark is what completes it. A tick every READ_BATCH_TICK_S drops the mark to one
byte on a connection that was not read since the previous tick (its stream slowed or
stopped), so no byte waits in the kernel more than two ticks. Each stream's rate is measured
at its reads, over RATE_WINDOW_S.

LL-HLS pushes never rest (a part is due every part target): they are read by their marks
whatever the number of publishers. TLS connections do not batch (the mark would count record
bytes, and a read that ends mid-record hands us nothing, so the keyframe rule could not see
the keyframe).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Callable
from typing import Protocol

from livechannel.rtmp.connection import ServerConnection

# A connection that was read rests until the process's next rest tick, this often, while the
# process has few publishers. A wake-up of a quiet process costs ~0.14 ms whatever it reads
# (bench/idle.py: one publisher writing every 20 ms cost 1.3 % of a core, every 100 ms 0.73 %),
# and a read that carries more frames costs less per frame (its connection's state stays warm):
# 10 publishers cost 3.9 % of a core with 100 ms rests and 2.2 % with 400 ms. The cut is
# aimed at as with batches, so a segment is listed no later for it.
READ_REST_S = 0.4
# Only a read this small rests: it emptied the socket (event loops read up to 256 KiB at once).
# A larger one means more may be waiting (a stream above ~4 Mbit/s in a rest, or one catching
# up): it is read on at once, so resting never limits a publisher's rate.
READ_REST_MAX_BYTES = 192 * 1024
# Past this many publishers in the process each wake-up already serves many connections, and a
# pause and a resume per read cost more than they save: connections batch instead.
READ_REST_MAX_PUBLISHERS = 32
# Above READ_REST_MAX_PUBLISHERS, a socket wakes us once it holds this long of its stream
# (up to READ_BATCH_MAX_BYTES): 12-40 writes of a load generator or an encoder (10-33 ms
# apart) per read instead of one. Each read then carries many frames, so the connection's
# state is warm in the CPU's caches for all but the first: side by side (docs/performance.md,
# "Reads aimed at the cut"), 200 ms cost 10 % less CPU per stream-minute than 50 ms, and
# 400 ms 4 % less again. Aiming at the cut (`due_in_ms`) keeps the playlist as early as
# before; without it the keyframe that arrives whole between two batched reads waited for
# the next (200 ms marks: playlist p99 164 ms against 36).
READ_BATCH_S = 0.4
READ_BATCH_MS = round(READ_BATCH_S * 1000)
# How often a stalled batching connection is looked for (and read); twice
# READ_BATCH_S, so a steady stream is always read between two ticks and never looks stalled.
READ_BATCH_TICK_S = 2 * READ_BATCH_S
# Near the cut, a read is aimed at this fraction of the way there (1/AIM_DIVISOR), then
# again from there. The mark counts bytes at the stream's average rate over RATE_WINDOW_S. In
# a steady stream the frames before a keyframe carry less than the average by the keyframe's
# share, and the keyframe's own bytes make up for it, so even the whole way would not land
# past the keyframe; what the fraction guards against is a stream whose rate fell within the
# window: a half lands in time unless the rate halved (else the read comes with a later mark
# or the tick). From 400 ms away to a write away takes 4-5 reads; with a quarter, 9-10, each
# a wake-up of its own while few publish (~0.14 ms).
AIM_DIVISOR = 2
# A cut this late (ms of the stream past the guess: an irregular keyframe interval) is no
# longer waited for at a read per write: the batch's usual mark until the keyframe comes.
DUE_LATE_MS = READ_BATCH_MS
# A stream's rate (its mark: READ_BATCH_S of it) is measured over at least this long, at its
# reads: over a short time the bytes swing with the GOP (a keyframe's against a P-frame's), so
# the mark would change at nearly every read, and each change is a system call
# (docs/performance.md).
RATE_WINDOW_S = 1.6
# The highest mark: below what uvloop reads at once (256 KiB), and small enough that raising
# the socket's receive buffer to fit it (the kernel does, to twice the mark) costs little.
READ_BATCH_MAX_BYTES = 128 * 1024
# A resting connection's mark: more than a rest of its stream brings (400 ms of 5 Mbit/s), so
# the rest ends at the process's tick, which puts the mark back to one byte, or at once when
# the peer closes (a FIN wakes a socket whatever its mark, socket(7)), where a paused
# connection would see the close only at the tick. Setting it also raises the socket's receive
# buffer to hold it, so the window never holds a publisher back while it rests.
REST_MARK_BYTES = 256 * 1024


class Paced(Protocol):
    """What the pacing needs of a connection (ingest/edge.py's RtmpProtocol)."""

    resting: bool
    low_latency: bool  # LL-HLS: never rests
    batch: ReadBatch | None

    @property
    def publishing(self) -> bool: ...

    def pause(self) -> None: ...

    def wake(self) -> None: ...


class BorrowedSocket(socket.socket):
    """A socket object on a descriptor the event loop owns, made once per connection: uvloop's
    transport socket builds and detaches one per `setsockopt` (~2 us a call against ~0.6, and
    a mark may change at any read). It never closes the descriptor, not even when collected:
    the transport does. `release` (the connection is gone) detaches it, so a late call fails
    (EBADF) instead of reaching whatever connection gets the number next."""

    __slots__ = ()

    @classmethod
    def on(cls, sock: socket.socket) -> BorrowedSocket:
        return cls(sock.family, sock.type, sock.proto, fileno=sock.fileno())

    def release(self) -> None:
        if self.fileno() >= 0:
            self.detach()

    def __del__(self) -> None:
        self.release()


class ReadBatch:
    """One connection's receive low-water mark and the figures kept for it."""

    __slots__ = (
        "conn", "due_in_ms", "mark", "rate_bytes", "rate_since", "reads", "size", "sock",
        "tick_reads",
    )  # fmt: skip

    def __init__(
        self,
        sock: socket.socket,
        conn: ServerConnection,
        due_in_ms: Callable[[], int | None] | None = None,
    ) -> None:
        """`due_in_ms`: the push's (PushPipeline.due_in_ms)."""
        self.sock = BorrowedSocket.on(sock)
        self.conn = conn
        self.due_in_ms = due_in_ms
        self.mark = 1  # what the socket is set to now (1: the kernel's default)
        self.size = 1  # the mark for this stream's rate, READ_BATCH_S of it (1: not known yet)
        self.reads = 0
        self.tick_reads = 0
        self.rate_bytes = conn.bytes_received  # at the start of the rate's measure
        self.rate_since = time.monotonic()

    def near_cut(self) -> bool:
        """Whether what ends the open segment or part comes before the next batched read or
        rest tick would (or came a little late)."""
        return self._near_due_ms() is not None

    def _near_due_ms(self) -> int | None:
        """`due_in_ms` while the cut is near (`near_cut`), else None."""
        due_ms = self.due_in_ms() if self.due_in_ms is not None else None
        if due_ms is not None and -DUE_LATE_MS < due_ms < READ_BATCH_MS:
            return due_ms
        return None

    def after_read(self) -> None:
        """Batching: the mark for the next read."""
        self.reads += 1
        self._measure()
        mark = self.conn.keyframe_remaining()  # reading it before it is whole gains nothing
        if not mark:
            mark = self.size
            due_ms = self._near_due_ms()
            if due_ms is not None:  # the cut comes before the next batched read would: aim
                mark = max(1, mark * due_ms // (AIM_DIVISOR * READ_BATCH_MS))
        elif mark > READ_BATCH_MAX_BYTES:
            mark = READ_BATCH_MAX_BYTES
        if mark != self.mark:
            self.set_mark(mark)

    def rest(self) -> None:
        """Rest by the mark (REST_MARK_BYTES) until `wake`."""
        self.reads += 1
        self._measure()
        if self.mark != REST_MARK_BYTES:
            self.set_mark(REST_MARK_BYTES)

    def wake(self) -> None:
        if self.mark != 1:
            self.set_mark(1)

    def _measure(self) -> None:
        now = time.monotonic()
        elapsed = now - self.rate_since
        if elapsed >= RATE_WINDOW_S:
            received = self.conn.bytes_received
            size = int((received - self.rate_bytes) * READ_BATCH_S / elapsed)
            self.size = max(1, min(size, READ_BATCH_MAX_BYTES))
            self.rate_bytes, self.rate_since = received, now

    def tick(self) -> None:
        if self.reads == self.tick_reads and self.mark > 1:
            self.set_mark(1)  # not read for a whole tick: whatever waits, read it now
        self.tick_reads = self.reads

    def set_mark(self, mark: int) -> None:
        self.mark = mark
        with contextlib.suppress(OSError):  # the socket closed meanwhile: nothing to pace
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, mark)


def _batches(conn: Paced, batch: ReadBatch, few: bool) -> bool:
    """Whether `conn` is read by its mark now: always while many publish, and an LL-HLS push
    always (it never rests); while few publish, a push near its cut."""
    return not few or conn.low_latency or batch.near_cut()


class ReadPacing:
    """The process's side: the rest timer and the batch tick (one each, not one per
    connection)."""

    def __init__(self, publishers: Callable[[], int]) -> None:
        self._publishers = publishers
        self._resting: list[Paced] = []
        self._rest_timer: asyncio.TimerHandle | None = None
        self._batching: set[Paced] = set()
        self._batch_timer: asyncio.TimerHandle | None = None

    def after_read(self, conn: Paced, nbytes: int) -> None:
        """`conn` (publishing) was just read `nbytes`. While few publish it rests, except
        near its cut, where it batches (aimed at the cut) as all do while many publish. A
        TLS connection has no batch: it rests while few publish (unless LL-HLS) and is read
        as its bytes come otherwise."""
        few = self._publishers() <= READ_REST_MAX_PUBLISHERS
        batch = conn.batch
        if batch is not None and conn.resting:
            # Read before its tick (its mark filled: a fast stream, or one catching up): the
            # rest is over, and so is its mark.
            conn.resting = False
            self._resting.remove(conn)  # not woken again by the tick (at most 32 rest)
            batch.wake()
        if batch is not None and _batches(conn, batch, few):
            batch.after_read()
            if conn not in self._batching:
                self._batching.add(conn)
                if self._batch_timer is None:
                    self._schedule_tick()
            return
        if few and nbytes < READ_REST_MAX_BYTES and not conn.resting and not conn.low_latency:
            self._rest(conn)

    def forget(self, conn: Paced) -> None:
        """`conn` closed: not held until a timer fires (at most READ_REST_MAX_PUBLISHERS
        rest, so the search is short), and its socket object lets the descriptor go."""
        if conn.resting:
            conn.resting = False
            with contextlib.suppress(ValueError):
                self._resting.remove(conn)
        self._batching.discard(conn)
        if conn.batch is not None:
            conn.batch.sock.release()

    def close(self) -> None:
        for timer in (self._rest_timer, self._batch_timer):
            if timer is not None:
                timer.cancel()
        self._rest_timer = self._batch_timer = None
        self._resting.clear()
        self._batching.clear()

    def _rest(self, conn: Paced) -> None:
        """Until the next rest tick: by the mark (REST_MARK_BYTES), or paused without one (TLS)."""
        if conn.batch is not None:
            conn.batch.rest()
        else:
            conn.pause()
        conn.resting = True
        self._resting.append(conn)
        if self._rest_timer is None:
            loop = asyncio.get_running_loop()
            self._rest_timer = loop.call_later(READ_REST_S, self._wake_resting)

    def _wake_resting(self) -> None:
        # Every connection in the list rests: one that stops resting (read early, closed)
        # leaves it then.
        resting, self._resting, self._rest_timer = self._resting, [], None
        for conn in resting:
            if conn.batch is not None:
                conn.resting = False
                conn.batch.wake()
            else:
                conn.wake()

    def _schedule_tick(self) -> None:
        loop = asyncio.get_running_loop()
        self._batch_timer = loop.call_later(READ_BATCH_TICK_S, self._tick)

    def _tick(self) -> None:
        self._batch_timer = None
        many = self._publishers() > READ_REST_MAX_PUBLISHERS
        for conn in list(self._batching):
            batch = conn.batch
            assert batch is not None  # only connections with a batch are added
            if conn.publishing and not conn.resting and _batches(conn, batch, not many):
                batch.tick()
            else:  # few publish and it rests, or this one ends (its goodbye must be read)
                if not conn.resting:  # a rest keeps its mark: the rest tick ends it
                    batch.wake()
                self._batching.discard(conn)
        if self._batching:
            self._schedule_tick()
