"""Watches the servers' output directories with inotify and notes when segments get listed.

Each channel directory gets a watch; whenever a playlist is (re)written, the thread reads it
at once and records, for every segment URI it has not seen before, the wall time it first
appeared and its EXTINF duration. Reading right after the event makes the time an upper bound
of when a player could have seen it. Works the same for ours (temp file renamed over
playlist.m3u8) and nginx-rtmp (index.m3u8.tmp renamed over index.m3u8).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import select
import struct
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

IN_CLOSE_WRITE = 0x00000008  # inotify(7)
IN_MOVED_TO = 0x00000080
EVENT_HEADER = struct.Struct("iIII")  # wd, mask, cookie, len
POLL_TIMEOUT_MS = 100  # how often the thread checks for stop
READ_BYTES = 64 * 1024


@dataclass(slots=True)
class Listing:
    uri: str
    duration_ms: int
    listed_wall_s: float


@dataclass(slots=True)
class ChannelLog:
    listings: list[Listing] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)


def parse_playlist(text: str) -> list[tuple[str, int]]:
    """(uri, EXTINF in ms) of each media segment, in order."""
    out, duration_ms = [], 0
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("#EXTINF:"):
            duration_ms = round(float(line[8:].split(",", 1)[0]) * 1000)
        elif line and not line.startswith("#"):
            out.append((line, duration_ms))
    return out


class PlaylistWatcher:
    def __init__(self, dirs: dict[str, Path], playlist_name: str) -> None:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        self._fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if self._fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1")
        self.playlist_name = playlist_name
        self.channels = {name: ChannelLog() for name in dirs}
        self._dirs: dict[int, tuple[str, Path]] = {}
        for name, path in dirs.items():
            wd = libc.inotify_add_watch(self._fd, str(path).encode(), IN_CLOSE_WRITE | IN_MOVED_TO)
            if wd < 0:
                raise OSError(ctypes.get_errno(), f"inotify_add_watch {path}")
            self._dirs[wd] = (name, path)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="playlist watcher", daemon=True)
        self.events = 0

    def start(self) -> PlaylistWatcher:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        os.close(self._fd)
        for name, log in self.channels.items():  # whatever changed without an event
            path = next(p for n, p in self._dirs.values() if n == name)
            self._read(log, path / self.playlist_name, time.time())

    def _run(self) -> None:
        poller = select.poll()
        poller.register(self._fd, select.POLLIN)
        wanted = self.playlist_name.encode()
        while not self._stop.is_set():
            if not poller.poll(POLL_TIMEOUT_MS):
                continue
            try:
                data = os.read(self._fd, READ_BYTES)
            except BlockingIOError:
                continue
            now = time.time()
            changed: set[int] = set()
            pos = 0
            while pos < len(data):
                wd, _mask, _cookie, length = EVENT_HEADER.unpack_from(data, pos)
                name = data[pos + EVENT_HEADER.size : pos + EVENT_HEADER.size + length]
                pos += EVENT_HEADER.size + length
                if name.rstrip(b"\0") == wanted:
                    changed.add(wd)
            for wd in changed:
                channel, path = self._dirs[wd]
                self.events += 1
                self._read(self.channels[channel], path / self.playlist_name, now)

    @staticmethod
    def _read(log: ChannelLog, path: Path, now: float) -> None:
        try:
            text = path.read_text()
        except (OSError, UnicodeDecodeError):
            return
        for uri, duration_ms in parse_playlist(text):
            if uri not in log.seen:
                log.seen.add(uri)
                log.listings.append(Listing(uri, duration_ms, now))
