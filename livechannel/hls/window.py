"""The live playlist's sliding window, derived from the segment index.

The window is the channel's FragCount most recent segments, whatever push wrote them, so a
republish (or a restart of the service) continues the same playlist: MEDIA-SEQUENCE is the
first listed segment's `seq`, DISCONTINUITY-SEQUENCE counts the discontinuities that have
scrolled out. Both only grow because `seq` only grows (the pipeline continues numbering from
the store).
"""

from __future__ import annotations

import logging
from collections import deque

from livechannel.hls.playlist import MediaPlaylist, PlaylistEntry, rounded_s
from livechannel.store.base import MetadataStore, Segment

log = logging.getLogger("livechannel.hls")


class LiveWindow:
    def __init__(self, frag_count: int, target_duration_s: int) -> None:
        self.frag_count = frag_count
        self.target_duration_s = target_duration_s
        self.segments: deque[Segment] = deque()
        self.discontinuity_sequence = 0

    @classmethod
    async def load(
        cls, store: MetadataStore, bucket: str, channel: str, frag_count: int, target_s: int
    ) -> LiveWindow:
        window = cls(frag_count, target_s)
        last = await store.last_segments(bucket, channel, frag_count)
        for segment in last:
            window.add(segment)
        if last:
            window.discontinuity_sequence = await store.discontinuities_before(
                bucket, channel, last[0].seq
            )
        return window

    @property
    def next_seq(self) -> int:
        return self.segments[-1].seq + 1 if self.segments else 0

    def add(self, segment: Segment) -> None:
        longest_s = rounded_s(segment.duration_ms)
        if longest_s > self.target_duration_s:
            # Keyframes further apart than 2·FragDuration, or a forced cut: never list an
            # EXTINF above TARGETDURATION (RFC 8216 4.3.3.1); raise it, never lower it.
            log.warning(
                "%s: a %.1f s segment raises TARGETDURATION from %d to %d",
                segment.key,
                segment.duration_ms / 1000,
                self.target_duration_s,
                longest_s,
            )
            self.target_duration_s = longest_s
        self.segments.append(segment)
        while len(self.segments) > self.frag_count:
            if self.segments.popleft().discontinuity:
                self.discontinuity_sequence += 1
        # A discontinuity on the first listed segment is implied by DISCONTINUITY-SEQUENCE
        # only once it scrolls out; while listed it stays tagged (RFC 8216 6.2.2).

    def playlist(self, *, ended: bool) -> MediaPlaylist:
        first_seq = self.segments[0].seq if self.segments else 0
        return MediaPlaylist(
            target_duration_s=self.target_duration_s,
            media_sequence=first_seq,
            discontinuity_sequence=self.discontinuity_sequence,
            entries=tuple(
                PlaylistEntry(
                    uri=s.key.rsplit("/", 1)[-1],  # the playlist sits next to its segments
                    duration_ms=s.duration_ms,
                    discontinuity=s.discontinuity,
                    map_uri=s.init_key.rsplit("/", 1)[-1],
                    # When its first frame reached us: players (hls.js playingDate) and
                    # latency measurements read the live edge's wall clock from it.
                    program_date_ms=s.start_ms,
                )
                for s in self.segments
            ),
            ended=ended,
        )
