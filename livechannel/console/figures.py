"""What the console shows of a channel: its row (status, live figures) and health warnings.

Pure. The figures are those every push's owner writes to the metadata store on each heartbeat
(livechannel.hls.stats.PushStats, the source of `/-/status` and GetLiveChannelStat), so one
console sees the pushes of every worker and node.
"""

from __future__ import annotations

import json
from typing import Any

from livechannel.store.base import Channel, Push, Segment

# Figures older than this mean the owner's heartbeats are late (an overloaded worker); at
# 5 s a worker elsewhere would sweep the push (livechannel.fleet.liveness).
STALE_FIGURES_MS = 3_000
# Segments waiting for storage beyond this mean storage is falling behind (the publisher is
# paused at Limits.upload_queue_segments, default 8).
UPLOAD_QUEUE_WARNING = 3
# A push this young has not had a full stats window (hls.stats.WINDOW_MS) yet: no
# "no video" or frame-rate warnings before then.
WARM_UP_MS = 5_000


def stats_of(push: Push | None) -> dict[str, Any]:
    if push is None or not push.stats_json:
        return {}
    try:
        stats = json.loads(push.stats_json)
    except ValueError:
        return {}  # written by an older or broken worker: show the push without figures
    return stats if isinstance(stats, dict) else {}


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def warnings(channel: Channel, push: Push | None, now_ms: int) -> list[str]:
    """Plain sentences an operator can act on; empty when all is well or nothing is live."""
    if push is None:
        return []
    out: list[str] = []
    stats = stats_of(push)
    health = _dict(stats.get("health"))
    frag_ms = channel.config.frag_duration_s * 1000
    age_ms = now_ms - push.heartbeat_ms
    if age_ms > STALE_FIGURES_MS:
        out.append(f"figures are {age_ms / 1000:.0f} s old: the ingest worker is late")
    if health.get("storage_error"):
        out.append(f"storage: {health['storage_error']}")
    queue = health.get("upload_queue")
    if isinstance(queue, int) and queue >= UPLOAD_QUEUE_WARNING:
        out.append(f"{queue} segments waiting for storage")
    interval = health.get("keyframe_interval_ms")
    if isinstance(interval, int) and interval > frag_ms:
        out.append(
            f"keyframe interval {interval / 1000:.1f} s is longer than FragDuration "
            f"{channel.config.frag_duration_s} s: segments come out longer"
        )
    if now_ms - push.start_ms >= WARM_UP_MS:
        if stats.get("video") is None:
            out.append("no video")
        elif not health.get("frame_rate"):
            out.append("no frames in the last 5 s")
        if stats.get("audio") is None:
            out.append("no audio")
    skipped = health.get("snapshots_skipped")
    if isinstance(skipped, int) and skipped > 0:
        out.append(f"{skipped} snapshots skipped (busy)")
    return out


def push_json(push: Push) -> dict[str, Any]:
    return {
        "remote_addr": push.remote_addr,
        "start_ms": push.start_ms,
        "end_ms": push.end_ms,
        "heartbeat_ms": push.heartbeat_ms,
        "worker": push.worker,
    }


def row(channel: Channel, push: Push | None, now_ms: int) -> dict[str, Any]:
    """One line of the channels table (and the head of a channel's page)."""
    config = channel.config
    stats = stats_of(push)
    video, audio = _dict(stats.get("video")), _dict(stats.get("audio"))
    health = _dict(stats.get("health"))
    return {
        "name": channel.name,
        "description": config.description,
        "status": config.status.value,
        "live": push is not None,
        "frag_duration_s": config.frag_duration_s,
        "frag_count": config.frag_count,
        "playlist_name": config.playlist_name,
        "snapshot_interval_s": config.snapshot.interval_s if config.snapshot else None,
        "last_modified_ms": channel.last_modified_ms,
        "push": None if push is None else push_json(push),
        "width": video.get("width"),
        "height": video.get("height"),
        "video_codec": video.get("codec"),
        "audio_codec": audio.get("codec"),
        "sample_rate": audio.get("sample_rate"),
        "frame_rate": health.get("frame_rate"),
        "video_bps": health.get("video_bitrate_bps"),
        "audio_bps": health.get("audio_bitrate_bps"),
        "keyframe_interval_ms": health.get("keyframe_interval_ms"),
        "segments": health.get("segments"),
        "warnings": warnings(channel, push, now_ms),
    }


def bitrate_series(segments: list[Segment]) -> list[dict[str, int]]:
    """Per segment: when it started and its average bit rate (from the segment index, so the
    graph covers the minutes before the page was opened, across restarts)."""
    return [
        {"t_ms": s.start_ms, "bps": s.size * 8000 // s.duration_ms}
        for s in segments
        if s.duration_ms > 0
    ]
