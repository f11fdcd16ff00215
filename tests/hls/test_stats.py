"""The live figures of a push (livechannel.hls.stats): rates from running totals and marks."""

from __future__ import annotations

import pytest

from livechannel.hls.stats import MARK_MS, WINDOW_MS, PushStats

FPS = 30


def feed(stats: PushStats, seconds: float, *, start_ms: int = 0, speed: float = 1.0,
         video_bytes: int = 1000, audio_bytes: int = 200) -> int:  # fmt: skip
    """30 fps video (a keyframe every 2 s) and 50 audio frames/s; returns the end media ms."""
    frames = int(seconds * FPS)
    for i in range(frames):
        media_ms = start_ms + i * 1000 // FPS
        wall_ms = int(media_ms / speed)
        stats.on_video_frame(wall_ms, media_ms, video_bytes, keyframe=i % (2 * FPS) == 0)
        if i % 3 == 0:  # audio every 20 ms, delivered in threes
            for k in range(5):
                stats.on_audio_frame(wall_ms, audio_bytes, media_ms + k * 20)
    return start_ms + frames * 1000 // FPS


def test_paced_rates_match_what_was_sent() -> None:
    stats = PushStats()
    end_ms = feed(stats, 10)
    assert stats.frame_rate() == pytest.approx(FPS, rel=0.01)
    health = stats.to_dict(end_ms)["health"]
    assert isinstance(health, dict)
    assert health["video_bitrate_bps"] == pytest.approx(1000 * 8 * FPS, rel=0.01)
    assert health["audio_bitrate_bps"] == pytest.approx(200 * 8 * 50, rel=0.02)
    assert health["bitrate_bps"] == health["video_bitrate_bps"] + health["audio_bitrate_bps"]
    assert health["frames"] == 10 * FPS and health["keyframes"] == 5
    assert health["keyframe_interval_ms"] == 2000


def test_wall_clock_bandwidth_and_idle() -> None:
    stats = PushStats()
    end_ms = feed(stats, 10)
    assert stats._video.bytes_per_s(end_ms) == pytest.approx(1000 * FPS, rel=0.05)
    assert stats._video.bytes_per_s(end_ms + WINDOW_MS + MARK_MS) == 0  # nothing for 5 s


def test_unpaced_push_keeps_media_rates() -> None:
    stats = PushStats()
    feed(stats, 20, speed=50.0)  # 20 s of media in 0.4 s
    assert stats.frame_rate() == pytest.approx(FPS, rel=0.01)
    assert stats.bitrate_bps() == pytest.approx(1000 * 8 * FPS + 200 * 8 * 50, rel=0.02)


def test_rates_follow_a_change_within_the_window() -> None:
    stats = PushStats()
    end_ms = feed(stats, 10, video_bytes=1000)
    feed(stats, WINDOW_MS / 1000 + 1, start_ms=end_ms, video_bytes=3000)
    assert stats._video.media_rate()[0] == pytest.approx(3000 * 8 * FPS, rel=0.01)


def test_clock_going_back_starts_the_window_over() -> None:
    stats = PushStats()
    feed(stats, 10, start_ms=3_600_000)
    feed(stats, 2, start_ms=0)  # a new encoder session restarting at 0
    assert stats.frame_rate() == pytest.approx(FPS, rel=0.02)
    assert stats.frames == 12 * FPS


def test_memory_does_not_grow_with_the_push() -> None:
    stats = PushStats()
    feed(stats, 600)
    assert len(stats._video._marks) <= WINDOW_MS // MARK_MS + 2
    assert len(stats._audio._marks) <= WINDOW_MS // MARK_MS + 2


def test_health_warns_while_no_keyframe_has_come() -> None:
    stats = PushStats()
    assert stats.to_dict(0)["health"]["warnings"] == []  # type: ignore[index]
    stats.on_video_frame(0, 0, 1000, keyframe=False)
    stats.on_video_frame(33, 33, 1000, keyframe=False)
    assert stats.to_dict(40)["health"]["warnings"] == ["no_keyframe"]  # type: ignore[index]
    stats.on_video_frame(66, 66, 5000, keyframe=True)
    assert stats.to_dict(70)["health"]["warnings"] == []  # type: ignore[index]
    stats.storage_error = "disk full"
    assert stats.to_dict(70)["health"]["warnings"] == ["storage_error"]  # type: ignore[index]
