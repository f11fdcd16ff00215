"""Snapshots, the core: which keyframes are taken, the JPEG a keyframe becomes (decoded back
by PyAV), and how the process-wide job limit and storage faults are counted."""

from __future__ import annotations

import asyncio
import fractions
import io
import os
import sys

import av
import numpy as np
import pytest

from livechannel.errors import StorageError
from livechannel.hls.snapshot import (
    SNAPSHOT_THREAD_NICE,
    JobSlots,
    SnapshotPlan,
    SnapshotSchedule,
    Snapshotter,
    encode_jpeg,
)
from livechannel.hls.stats import PushStats
from livechannel.media.frames import VideoFrame
from livechannel.storage.memory import MemoryStorage

WIDTH, HEIGHT = 320, 240


def keyframe_annexb() -> bytes:
    """One IDR frame from libx264 in Annex B with SPS/PPS in-band, as our demuxer makes them:
    the left half red, the right half blue."""
    encoder = av.CodecContext.create("libx264", "w")
    encoder.width, encoder.height, encoder.pix_fmt = WIDTH, HEIGHT, "yuv420p"
    encoder.time_base = fractions.Fraction(1, 30)
    picture = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    picture[:, : WIDTH // 2] = (220, 20, 20)
    picture[:, WIDTH // 2 :] = (20, 20, 220)
    frame = av.VideoFrame.from_ndarray(picture, format="rgb24").reformat(format="yuv420p")
    packets = [*encoder.encode(frame), *encoder.encode(None)]
    assert packets[0].is_keyframe
    return bytes(packets[0])


@pytest.fixture(scope="module")
def keyframe() -> bytes:
    return keyframe_annexb()


def due_times(interval_ms: int, keyframes_ms: list[int]) -> list[int]:
    schedule = SnapshotSchedule(interval_ms)
    return [t for t in keyframes_ms if schedule.due(t)]


def test_one_snapshot_per_interval_that_has_a_keyframe() -> None:
    every_2s = list(range(0, 22_000, 2_000))
    assert due_times(5_000, every_2s) == [0, 6_000, 10_000, 16_000, 20_000]
    assert due_times(1_000, every_2s) == every_2s  # no keyframe in odd seconds: no snapshot
    assert due_times(2_000, [1_000, 2_500, 2_900, 3_100, 9_000]) == [1_000, 3_100, 9_000]


def test_a_clock_that_jumps_back_starts_the_windows_again() -> None:
    assert due_times(5_000, [3_600_000, 3_602_000, 10, 2_000, 5_010]) == [3_600_000, 10, 5_010]


def test_a_keyframe_becomes_a_jpeg_of_the_same_picture(keyframe: bytes) -> None:
    jpeg = encode_jpeg(keyframe)
    assert jpeg is not None and jpeg[:2] == b"\xff\xd8"  # SOI
    picture = next(av.open(io.BytesIO(jpeg)).decode(video=0))
    assert (picture.width, picture.height) == (WIDTH, HEIGHT)
    rgb = picture.to_ndarray(format="rgb24").astype(int)
    left, right = rgb[HEIGHT // 2, WIDTH // 4], rgb[HEIGHT // 2, 3 * WIDTH // 4]
    assert abs(left - (220, 20, 20)).max() < 30 and abs(right - (20, 20, 220)).max() < 30


@pytest.mark.parametrize("data", [b"", b"\x00\x00\x00\x01\x65" + b"\x88" * 64, b"\xff" * 300])
def test_what_does_not_decode_gives_none(data: bytes) -> None:
    assert encode_jpeg(data) is None


def test_a_picture_over_the_pixel_limit_is_not_decoded(keyframe: bytes) -> None:
    assert encode_jpeg(keyframe, max_pixels=WIDTH * HEIGHT) is not None
    assert encode_jpeg(keyframe, max_pixels=WIDTH * HEIGHT - 1) is None


class BrokenStorage(MemoryStorage):
    async def put(self, *args: object, **kwargs: object) -> object:  # type: ignore[override]
        raise StorageError("disk on fire")


async def test_busy_encoders_skip_and_storage_faults_count(keyframe: bytes) -> None:
    storage, slots = MemoryStorage(), JobSlots(1)
    stats = PushStats()
    shooter = Snapshotter(SnapshotPlan(1, storage, slots), "cam", stats)
    for i in range(3):  # three due keyframes at once, one job slot
        shooter.on_keyframe(VideoFrame(i * 1000, i * 1000, True, keyframe), 5_000 + i)
    await shooter.close()
    assert (stats.snapshots, stats.snapshots_skipped, slots.free) == (1, 2, 1)
    listing = await storage.list("cam/", "", 10, "")
    assert [o.key for o in listing.objects] == ["cam/5000.jpg"]

    stats = PushStats()
    broken = Snapshotter(SnapshotPlan(1, BrokenStorage(), slots), "cam", stats)
    broken.on_keyframe(VideoFrame(0, 0, True, keyframe), 1)
    await broken.close()
    assert (stats.snapshots, stats.snapshots_skipped, slots.free) == (0, 1, 1)
    health = stats.to_dict(0)["health"]
    assert isinstance(health, dict) and health["snapshots_skipped"] == 1


async def test_close_waits_for_a_snapshot_in_progress(keyframe: bytes) -> None:
    storage, stats = MemoryStorage(), PushStats()
    shooter = Snapshotter(SnapshotPlan(1, storage, JobSlots(2)), "cam", stats)
    shooter.on_keyframe(VideoFrame(0, 0, True, keyframe), 7)
    await asyncio.wait_for(shooter.close(), 10)
    assert stats.snapshots == 1 and (await storage.head("cam/7.jpg")).size > 0


@pytest.mark.skipif(sys.platform != "linux", reason="per-thread nice is a Linux feature")
def test_snapshot_threads_run_below_ingest_priority() -> None:
    slots = JobSlots(1)
    try:
        nice = slots.executor.submit(os.getpriority, os.PRIO_PROCESS, 0).result(timeout=10)
    finally:
        slots.executor.shutdown()
    assert nice >= SNAPSHOT_THREAD_NICE > os.getpriority(os.PRIO_PROCESS, 0)
