"""LL-HLS (RFC 8216bis) on the node that owns a push: its parts in memory and its playlist
with parts (sans-IO: `live_endpoint.py` does the waiting for blocking playlist reloads and
preload-hinted parts, answered as soon as the part exists).

Where things live (decided, docs/hls.md "LL-HLS"):

* Parts exist only in the owning process's memory, as the fragments the segmenter cut (the
  same bytes the segment is made of, never copied). They are kept while the playlist lists
  them: for the segment in progress, the last closed segment, and closed segments ending
  within PART_WINDOW_PARTS part targets of the live edge (players use parts only there:
  PART-HOLD-BACK is three part targets; RFC 8216bis 4.4.4.9 allows up to three target
  durations), and never more than MAX_PART_BYTES_PER_PUSH. The init section and closed
  segments still uploading are served from here too, so a player never asks storage for
  what is not there yet.
* Storage keeps what it always kept: segments, init sections and a classic playlist
  (written per segment). Another node (or this one after the push ended) serves that
  classic playlist; LL-HLS players then play it at classic latency. Route a channel's
  players to the node that owns its push for low latency.

Part URIs are `p<push id>-<part number>.m4s` beside the segments: numbered across segment
boundaries, so the preload hint can name the next part before anyone knows whether it starts
a new segment.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from livechannel.hls.playlist import MediaPlaylist, PartEntry, PlaylistEntry, render, rounded_s
from livechannel.store.base import Segment

# Closed segments keep their parts while they end within this many part targets of the live
# edge (twice PART-HOLD-BACK), the last closed one always: near the edge is where players
# use parts, and every part kept is memory (a whole segment's worth per push, measured).
PART_WINDOW_PARTS = 6
ADVANCE_PART_LIMIT = 3  # RFC 8216bis 6.2.5.2: asking further ahead is a 400
SKIP_TARGETS = 6  # RFC 8216bis 4.4.3.8: CAN-SKIP-UNTIL at least six target durations
# Parts held per push at most (32 MiB: 3 targets of 8 s at 10 Mbit/s); the oldest go first.
MAX_PART_BYTES_PER_PUSH = 32 * 1024 * 1024


class BadReload(ValueError):
    """A blocking reload asks for something the RFC says to refuse (400)."""


@dataclass(slots=True)
class LivePart:
    number: int
    duration_ms: int
    independent: bool
    chunks: list[bytes]
    size: int


@dataclass(slots=True)
class LiveSegment:
    seq: int
    name: str  # "<ms>.m4s"
    start_ms: int  # wall clock: EXT-X-PROGRAM-DATE-TIME
    discontinuity: bool
    map_name: str
    duration_ms: int | None = None  # None while open
    parts: list[LivePart] = field(default_factory=list)
    chunks: list[bytes] | None = None  # closed, until storage has it


class LowLatencyPlaylist:
    """One push's LL-HLS view (no I/O; `live_endpoint.LiveEndpoint` adds the waiting)."""

    def __init__(
        self, *, push_id: int, part_target_ms: int, frag_count: int, target_s: int
    ) -> None:
        self.push_id = push_id
        self.part_target_ms = part_target_ms
        self.frag_count = frag_count
        self.target_s = target_s
        self.closed: deque[LiveSegment] = deque()
        self.open: LiveSegment | None = None
        self.discontinuity_sequence = 0
        self.next_part = 0
        self.parts: dict[int, LivePart] = {}
        self.part_bytes = 0
        self.init: tuple[str, bytes] | None = None  # (name, bytes) of the current init section
        # The push is over: waiters are released and no part is hinted; the playlist gets no
        # ENDLIST here (a republish within the grace period continues it: storage's playlist
        # says when it ended, as for classic HLS).
        self.finished = False

    # --- what the pipeline tells it ----------------------------------------------------

    def seed(self, stored: list[Segment], discontinuity_sequence: int) -> None:
        """The live window's segments from earlier pushes (no parts)."""
        for s in stored:
            self.closed.append(
                LiveSegment(
                    s.seq,
                    s.key.rsplit("/", 1)[-1],
                    s.start_ms,
                    s.discontinuity,
                    s.init_key.rsplit("/", 1)[-1],
                    s.duration_ms,
                )
            )
        self.discontinuity_sequence = discontinuity_sequence

    def part_name(self, number: int) -> str:
        return f"p{self.push_id}-{number}.m4s"

    def open_segment(self, seq: int, name: str, start_ms: int, discontinuity: bool,
                     map_name: str) -> None:  # fmt: skip
        self.open = LiveSegment(seq, name, start_ms, discontinuity, map_name)

    def add_part(self, duration_ms: int, independent: bool, chunks: list[bytes], size: int) -> None:
        assert self.open is not None, "a part comes after its segment was opened"
        part = LivePart(self.next_part, duration_ms, independent, chunks, size)
        self.next_part += 1
        self.open.parts.append(part)
        self.parts[part.number] = part
        self.part_bytes += size
        self._trim_parts()

    def close_segment(self, duration_ms: int, chunks: list[bytes]) -> None:
        segment = self.open
        assert segment is not None
        segment.duration_ms, segment.chunks = duration_ms, chunks
        self.target_s = max(self.target_s, rounded_s(duration_ms))
        self.closed.append(segment)
        self.open = None
        while len(self.closed) > self.frag_count:
            gone = self.closed.popleft()
            self.discontinuity_sequence += gone.discontinuity
            self._forget_parts(gone)
        self._trim_parts()

    def stored(self, name: str) -> None:
        """Storage has this segment now: its bytes need not be held for it."""
        for segment in self.closed:
            if segment.name == name:
                segment.chunks = None

    def _forget_parts(self, segment: LiveSegment) -> None:
        for part in segment.parts:
            if self.parts.pop(part.number, None) is not None:
                self.part_bytes -= part.size
        segment.parts = []

    def _trim_parts(self) -> None:
        """Parts of closed segments beyond PART_WINDOW_PARTS part targets go, and a closed
        segment's parts go whole (a segment lists all its parts or none), oldest first, while
        the push holds more than MAX_PART_BYTES_PER_PUSH. The open segment's stay: max_segment_bytes
        bounds them."""
        window_ms = PART_WINDOW_PARTS * self.part_target_ms
        recent_ms = 0
        for index, segment in enumerate(reversed(self.closed)):
            if index > 0 and recent_ms >= window_ms:
                self._forget_parts(segment)
            recent_ms += segment.duration_ms or 0
        for segment in self.closed:
            if self.part_bytes <= MAX_PART_BYTES_PER_PUSH:
                break
            self._forget_parts(segment)

    # --- what players ask ----------------------------------------------------------------

    def last_msn(self) -> int:
        """The Media Sequence Number of the last complete segment (-1 before any)."""
        return self.closed[-1].seq if self.closed else -1

    def check(self, msn: int | None, part: int | None) -> None:
        """RFC 8216bis 6.2.5.2: refuse what is too far ahead (or malformed)."""
        if part is not None and msn is None:
            raise BadReload("_HLS_part needs _HLS_msn")
        if msn is None:
            return
        if msn > self.last_msn() + 2:
            raise BadReload("_HLS_msn is more than two segments ahead of the playlist")
        segment = self.open
        if part is None or segment is None or msn != segment.seq:
            return
        if part >= len(segment.parts) + ADVANCE_PART_LIMIT:
            raise BadReload("_HLS_part is beyond the advance part limit")

    def satisfied(self, msn: int | None, part: int | None) -> bool:
        """Does the playlist now hold segment `msn` (with part `part`), or something later?"""
        if self.finished or msn is None:
            return True
        if msn <= self.last_msn():
            return True
        open_segment = self.open
        if part is None or open_segment is None:
            return False
        if open_segment.seq > msn:
            return True
        return open_segment.seq == msn and len(open_segment.parts) > part

    def part(self, number: int) -> LivePart | None:
        return self.parts.get(number)

    def segment_bytes(self, name: str) -> list[bytes] | None:
        """A closed segment not yet in storage."""
        for segment in self.closed:
            if segment.name == name and segment.chunks is not None:
                return segment.chunks
        return None

    def can_skip_until_ms(self) -> int:
        """Offered only when the window is long enough for a skip to save anything."""
        skip_ms = SKIP_TARGETS * self.target_s * 1000
        total = sum(s.duration_ms or 0 for s in self.closed)
        return skip_ms if total > skip_ms else 0

    def playlist(self, *, skip: bool = False) -> MediaPlaylist:
        entries = [
            PlaylistEntry(
                uri=s.name,
                duration_ms=s.duration_ms or 0,
                discontinuity=s.discontinuity,
                map_uri=s.map_name,
                parts=tuple(self._entries(s.parts)),
                program_date_ms=s.start_ms,
            )
            for s in self.closed
        ]
        skipped = 0
        can_skip_ms = self.can_skip_until_ms()
        if skip and can_skip_ms:
            # Segments entirely older than CAN-SKIP-UNTIL from the end are left out.
            end_ms = sum(e.duration_ms for e in entries)
            start_ms = 0
            for entry in entries:
                if end_ms - (start_ms + entry.duration_ms) < can_skip_ms:
                    break
                start_ms += entry.duration_ms
                skipped += 1
        open_segment = self.open
        return MediaPlaylist(
            target_duration_s=self.target_s,
            media_sequence=self.closed[0].seq if self.closed else (
                open_segment.seq if open_segment else 0),
            discontinuity_sequence=self.discontinuity_sequence,
            entries=tuple(entries[skipped:]),
            ended=False,
            part_target_ms=self.part_target_ms,
            open_parts=tuple(self._entries(open_segment.parts)) if open_segment else (),
            open_map_uri=open_segment.map_name if open_segment else "",
            open_discontinuity=open_segment.discontinuity if open_segment else False,
            open_program_date_ms=open_segment.start_ms if open_segment else None,
            preload_uri="" if self.finished else self.part_name(self.next_part),
            can_skip_until_ms=can_skip_ms,
            skipped=skipped,
        )  # fmt: skip

    def _entries(self, parts: list[LivePart]) -> list[PartEntry]:
        return [PartEntry(self.part_name(p.number), p.duration_ms, p.independent) for p in parts]

    def render(self, *, skip: bool = False) -> str:
        return render(self.playlist(skip=skip))
