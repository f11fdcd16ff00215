"""Follows LL-HLS playlists as an LL-HLS player does (a blocking reload for the next part,
RFC 8216bis 6.2.5.2) and measures how soon after a part is complete the answer that lists
it arrives.

When a part is complete is estimated from the playlist itself: its segment's
EXT-X-PROGRAM-DATE-TIME is when the segment's first frame reached the server, and the load
generator paces media in real time, so part P ends at that time plus the durations of parts
0..P. Publisher pacing jitter (a write every 20 ms) is part of the figure.
"""

from __future__ import annotations

import re
import threading
import time
import urllib.request
from datetime import datetime

REQUEST_TIMEOUT_S = 10.0
_PDT = re.compile(r"#EXT-X-PROGRAM-DATE-TIME:(\S+)")
_PART = re.compile(r"#EXT-X-PART:DURATION=([0-9.]+)")


def _segments(text: str) -> tuple[int, list[tuple[float, list[float]]]]:
    """(media sequence, [(PDT as Unix s, part durations)] incl. the segment in progress)."""
    sequence = int(re.search(r"#EXT-X-MEDIA-SEQUENCE:(\d+)", text).group(1))  # type: ignore[union-attr]
    out: list[tuple[float, list[float]]] = []
    pdt, parts = 0.0, []
    for line in text.splitlines():
        if m := _PDT.match(line):
            pdt = datetime.fromisoformat(m.group(1).replace("Z", "+00:00")).timestamp()
        elif m := _PART.match(line):
            parts.append(float(m.group(1)))
        elif line and not line.startswith("#"):
            out.append((pdt, parts))
            parts = []
    if parts:
        out.append((pdt, parts))
    return sequence, out


class LlProbe:
    """One thread per followed playlist; `delays_ms` collects answer delays."""

    def __init__(self, urls: list[str]) -> None:
        self.urls = urls
        self.delays_ms: list[float] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._follow, args=(u,), daemon=True)
                         for u in urls]  # fmt: skip

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(REQUEST_TIMEOUT_S + 1)

    def _get(self, url: str, *, record: bool = True) -> str | None:
        try:
            with urllib.request.urlopen(url, timeout=REQUEST_TIMEOUT_S) as answer:
                return str(answer.read().decode())
        except OSError as e:
            if record and len(self.errors) < 20:
                self.errors.append(f"{url}: {e}")
            return None

    def _follow(self, url: str) -> None:
        text = None
        while not self._stop.is_set() and text is None:
            text = self._get(url, record=False)  # 404 until the publisher's first segment
            if text is None or "#EXT-X-PART:" not in text:
                text = None
                time.sleep(0.5)
        while not self._stop.is_set() and text is not None:
            sequence, segments = _segments(text)
            msn = sequence + len(segments) - 1
            # Ask for the part after the last one listed: parts after the last EXTINF belong
            # to the segment in progress (the last entry of `segments`).
            tail = text[text.rfind("#EXTINF") :] if "#EXTINF" in text else text
            open_parts = len(_PART.findall(tail))
            if open_parts:
                want_msn, want_part = msn, open_parts
            else:
                want_msn, want_part = msn + 1, 0
            answer = self._get(f"{url}?_HLS_msn={want_msn}&_HLS_part={want_part}")
            answered = time.time()
            if answer is None or "#EXT-X-PART:" not in answer:
                return  # the push ended: storage's classic playlist answers now
            sequence, segments = _segments(answer)
            index = want_msn - sequence
            if 0 <= index < len(segments) and len(segments[index][1]) > want_part:
                pdt, parts = segments[index]
                complete = pdt + sum(parts[: want_part + 1])
                self.delays_ms.append((answered - complete) * 1000)
            text = answer
