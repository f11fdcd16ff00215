"""A push's segment names: sequence number, object key, init section key and discontinuity,
fixed when a segment is closed (LL-HLS: when its first part is out, since parts and the
playlist name it).

A key is `<channel>/<arrival ms><extension>`, never one an earlier segment of the channel
had (at least the last one's time + 1 ms), whatever push wrote it; an fMP4 init section is
named after the first segment that needs it, and never reused either. Numbers continue the
live window's (window.py), and a push's first segment after earlier ones is a discontinuity.
"""

from __future__ import annotations

from dataclasses import dataclass

from livechannel.hls.window import LiveWindow
from livechannel.store.base import SegmentFormat


@dataclass(frozen=True, slots=True)
class SegmentName:
    seq: int
    key_ms: int
    key: str
    init_key: str
    discontinuity: bool


class SegmentNamer:
    def __init__(self, channel: str, segment_format: SegmentFormat, window: LiveWindow) -> None:
        """`window`: the channel's live window as the push found it."""
        self.channel = channel
        self.extension = segment_format.extension
        self._window = window
        self._last_key_ms = _key_ms(window.segments[-1].key) if window.segments else 0
        self._next_seq = window.next_seq
        self._first_of_push = True
        # fMP4: the init section last named, and its key (a new one per configuration).
        self._init: bytes | None = None
        self._init_key = ""

    def name(self, arrival_ms: int, init: bytes | None, discontinuity: bool) -> SegmentName:
        key_ms = max(arrival_ms, self._last_key_ms + 1)  # names are never reused
        self._last_key_ms = key_ms
        if init is not None and init != self._init:
            # Named after the first segment that needs it: never reused either.
            self._init, self._init_key = init, f"{self.channel}/{key_ms}.mp4"
        discontinuity = discontinuity or (self._first_of_push and bool(self._window.segments))
        self._first_of_push = False
        seq, self._next_seq = self._next_seq, self._next_seq + 1
        init_key = self._init_key if init is not None else ""
        key = f"{self.channel}/{key_ms}{self.extension}"
        return SegmentName(seq, key_ms, key, init_key, discontinuity)


def _key_ms(key: str) -> int:
    stem = key.rsplit("/", 1)[-1].partition(".")[0]
    return int(stem) if stem.isdigit() else 0
