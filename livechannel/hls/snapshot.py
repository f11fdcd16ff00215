"""Snapshots: a JPEG of the live stream every `Interval` seconds.

OSS API reference, PutLiveChannel, `Snapshot`.

Which frames: the push's media time is cut into Interval-long windows from its first
keyframe, and the first keyframe of each window is taken. A window with no keyframe gets no
snapshot, as the reference says of Interval ("no keyframe in the interval, no snapshot"):
with a 2 s GOP and Interval 1, a snapshot every 2 s. Keyframes only, because they decode alone.

Where: `DestBucket` (the channel's own bucket when it is empty), key `<channel>/<ms>.jpg`,
where ms is the keyframe's arrival time, the clock segment names use, so a snapshot sorts next
to the segment it came from and ListObjects with prefix `<channel>/` and a marker pages them.

Cost: decoding the keyframe and encoding the JPEG (~5 ms of CPU at 720p, a 57 KiB JPEG:
bench/snapshot_bench.py) run in two threads of their own at a lower priority, never on the
event loop. A process has at most `Limits.max_snapshot_jobs` in flight; a snapshot due beyond
that is skipped and counted (`snapshots_skipped` in the push's figures): snapshots are a
preview, the live path must not wait for them, and on a box short of CPU they are what gives.

RoleName and NotifyTopic are stored as given; there is no MNS here to notify.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import logging
import os
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import av

from livechannel.errors import StorageError
from livechannel.hls.stats import PushStats
from livechannel.media.frames import VideoFrame
from livechannel.ops import metrics
from livechannel.storage.base import ObjectStorage

log = logging.getLogger("livechannel.hls.snapshot")

# The largest picture we decode: H.264's own ceiling (level 6.2: 139,264 macroblocks, ~8K).
# A publisher's SPS claiming more would cost hundreds of MB per snapshot; no snapshot then.
MAX_SNAPSHOT_PIXELS = 139_264 * 16 * 16
SNAPSHOT_THREADS = 2  # per process: encoding is CPU-bound, more threads than cores only contend
SNAPSHOT_THREAD_NICE = 10  # nice(1)'s default step: runs when ingest threads do not need a core
JPEG_QSCALE = 4  # libavcodec's mjpeg quantiser, 2 (best) .. 31; ffmpeg's -q:v 2-5 is "good"


class SnapshotSchedule:
    """Sans-IO: which keyframes (by media time) to take."""

    def __init__(self, interval_ms: int) -> None:
        self.interval_ms = interval_ms
        self._origin_ms: int | None = None
        self._window = -1

    def due(self, dts_ms: int) -> bool:
        if self._origin_ms is None or dts_ms < self._origin_ms:
            # First keyframe, or the publisher's clock went back: windows start again here.
            self._origin_ms, self._window = dts_ms, -1
        window = (dts_ms - self._origin_ms) // self.interval_ms
        if window <= self._window:
            return False
        self._window = window
        return True


def encode_jpeg(annexb: bytes, max_pixels: int = MAX_SNAPSHOT_PIXELS) -> bytes | None:
    """A keyframe (H.264 Annex B with its SPS/PPS, as `VideoFrame` carries it) as a JPEG, or
    None if it does not decode or is larger than `max_pixels`. Blocking: call it in a thread."""
    decoder = av.CodecContext.create("h264", "r")
    decoder.thread_count = 1  # one picture: threads would only add start-up cost
    decoder.options = {"max_pixels": str(max_pixels)}  # refused before any picture is allocated
    try:
        pictures = [*decoder.decode(av.Packet(annexb)), *decoder.decode(None)]
        if not pictures:
            return None
        picture = pictures[0]
        encoder = av.CodecContext.create("mjpeg", "w")
        encoder.width, encoder.height = picture.width, picture.height
        encoder.pix_fmt = "yuvj420p"  # JPEG's full-range YUV
        encoder.time_base = fractions.Fraction(1, 1)
        encoder.qmin = encoder.qmax = JPEG_QSCALE  # a constant quality, not a bitrate guess
        full_range = picture.reformat(format="yuvj420p")
        return b"".join(bytes(p) for p in [*encoder.encode(full_range), *encoder.encode()])
    except av.FFmpegError:
        return None


def _lower_priority() -> None:
    """Snapshot threads yield the CPU to ingest: on a busy box the live path stays on time
    and snapshots get what is left (then more of them are skipped, as they may be)."""
    with contextlib.suppress(OSError):  # Linux sets a thread's nice by its id; else a no-op
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), SNAPSHOT_THREAD_NICE)


class JobSlots:
    """How many snapshots this process has in flight (shared by every push), and the threads
    that encode them: their own, so a burst of snapshots never delays a segment's put."""

    def __init__(self, size: int) -> None:
        self.free = size
        self.executor = ThreadPoolExecutor(
            max_workers=SNAPSHOT_THREADS, thread_name_prefix="snap", initializer=_lower_priority
        )


@dataclass(frozen=True, slots=True)
class SnapshotPlan:
    """A channel's Snapshot config, resolved by the ingest edge for one push."""

    interval_s: int
    storage: ObjectStorage  # DestBucket's
    slots: JobSlots  # the process's


class Snapshotter:
    """One push's snapshots: fed every keyframe, writes the due ones to storage."""

    def __init__(
        self,
        plan: SnapshotPlan,
        channel: str,
        stats: PushStats,
        notify: Callable[[str, Mapping[str, Any]], None] | None = None,
    ) -> None:
        self.notify = notify  # webhooks: on_snapshot
        self.schedule = SnapshotSchedule(plan.interval_s * 1000)
        self.storage = plan.storage
        self.slots = plan.slots
        self.channel = channel
        self.stats = stats
        self._jobs: set[asyncio.Task[None]] = set()

    def on_keyframe(self, frame: VideoFrame, arrival_ms: int) -> None:
        if not self.schedule.due(frame.dts_ms):
            return
        if self.slots.free <= 0:
            self.stats.snapshots_skipped += 1
            metrics.SNAPSHOTS.labels("skipped").inc()
            return
        self.slots.free -= 1
        key = f"{self.channel}/{arrival_ms}.jpg"
        job = asyncio.create_task(self._take(frame.data, key), name=f"snapshot {key}")
        self._jobs.add(job)
        job.add_done_callback(self._jobs.discard)

    async def _take(self, annexb: bytes, key: str) -> None:
        try:
            loop = asyncio.get_running_loop()
            jpeg = await loop.run_in_executor(self.slots.executor, encode_jpeg, annexb)
            if jpeg is None:
                self.stats.snapshots_skipped += 1
                metrics.SNAPSHOTS.labels("skipped").inc()
                log.warning("snapshot %s: the keyframe did not decode", key)
                return
            await self.storage.put(key, jpeg, "image/jpeg")
            self.stats.snapshots += 1
            metrics.SNAPSHOTS.labels("stored").inc()
            if self.notify is not None:
                self.notify("on_snapshot", {"key": key})
        except StorageError as e:  # the next one comes an Interval later; no retry queue
            self.stats.snapshots_skipped += 1
            metrics.SNAPSHOTS.labels("skipped").inc()
            log.warning("snapshot %s not stored: %s", key, e)
        except Exception:  # a preview must never take the push down with it
            self.stats.snapshots_skipped += 1
            metrics.SNAPSHOTS.labels("skipped").inc()
            log.exception("snapshot %s failed", key)
        finally:
            self.slots.free += 1

    async def close(self) -> None:
        """Wait for the snapshots already being taken (a few at most, ~5 ms each)."""
        if self._jobs:
            await asyncio.gather(*self._jobs, return_exceptions=True)
