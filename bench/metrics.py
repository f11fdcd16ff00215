"""Turning one trial's raw observations into the figures of the benchmark table.

Inputs: the load generator's report (per publisher: Publish.Start, end, and the wall time
each keyframe left), the watcher's listings (when each segment first appeared in its channel's
playlist), the segment files on disk, and the server's CPU/RSS from /proc.

Playlist latency of a segment: from its closing keyframe leaving the load generator (on
loopback that is when it reaches the server's socket) to the playlist listing it. The closing
keyframe is found by media time: the first keyframe plus the EXTINF durations so far. The
segment flushed at unpublish has no closing keyframe and is not counted.
"""

from __future__ import annotations

import bisect
import itertools
from dataclasses import dataclass, field
from typing import Any

from bench.chunkplan import expected_segments
from bench.watch import ChannelLog

# "On time": a segment is listed at most this long after its closing keyframe was sent ...
ON_TIME_LATENCY_MS = 1_000
# ... and the load generator itself never fell this far behind real time (machine saturated).
ON_TIME_LOADGEN_LAG_MS = 1_000


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


@dataclass(slots=True)
class TrialResult:
    server: str
    n: int
    cpu_s: float = 0.0  # server CPU in the steady window
    window_s: float = 0.0
    cores: int = 1
    loadgen_cpu_s: float = 0.0
    loadgen_wall_s: float = 0.0
    baseline_rss: int = 0
    peak_rss: int = 0
    segments_written: int = 0
    segments_expected: int = 0
    max_gap_ms: int = 0
    gap_bound_ms: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    unmatched: int = 0  # listed segments whose closing keyframe was not found
    errors: list[str] = field(default_factory=list)
    late_publishers: int = 0
    max_loadgen_lag_ms: float = 0.0
    bytes_sent: int = 0
    send_s: float = 0.0  # longest publish, Publish.Start to unpublish
    snapshots: int = 0  # JPEGs stored (server `snap`: ours with a Snapshot on every channel)
    cpu_user_s: float = 0.0  # cpu_s split: user time ...
    cpu_sys_s: float = 0.0  # ... and system time (the kernel's work billed to the server)
    chunk_size: int = 0  # the publishers' RTMP chunk size
    chunk_label: str = ""  # as asked: a size, or "server" (what the server announces)
    write_interval_ms: float = 0.0  # how often each publisher wrote
    regime: str = ""  # the page-cache regime (bench/page_cache.py)
    regime_figures: dict[str, float] = field(default_factory=dict)  # what preparing it did
    # LL-HLS: how long after a part was complete a blocking reload listing it was answered
    # (bench/ll_probe.py), for the channels followed.
    part_answer_ms: list[float] = field(default_factory=list)

    @property
    def mb_per_s(self) -> float:
        return self.bytes_sent / 1e6 / self.send_s if self.send_s else float("nan")

    @property
    def mb_per_cpu_s(self) -> float:
        """MB/s per core: bytes ingested per second of server CPU."""
        return self.bytes_sent / 1e6 / self.cpu_s if self.cpu_s else float("nan")

    @property
    def cpu_per_stream_min(self) -> float:
        return self.cpu_s / (self.n * self.window_s / 60) if self.window_s else float("nan")

    @property
    def cpu_pct_of_cores(self) -> float:
        return 100 * self.cpu_s / self.window_s / self.cores if self.window_s else float("nan")

    @property
    def rss_per_publisher(self) -> float:
        return (self.peak_rss - self.baseline_rss) / self.n

    @property
    def on_time(self) -> bool:
        return (
            not self.errors
            and self.segments_written >= self.segments_expected
            and self.max_gap_ms <= self.gap_bound_ms
            and self.late_publishers == 0
            and self.max_loadgen_lag_ms <= ON_TIME_LOADGEN_LAG_MS
        )

    def summary(self) -> dict[str, Any]:
        return {
            "server": self.server,
            "n": self.n,
            "cpu_s_per_stream_min": round(self.cpu_per_stream_min, 4),
            "cpu_pct_of_cores": round(self.cpu_pct_of_cores, 1),
            "peak_rss_mib": round(self.peak_rss / 2**20, 1),
            "rss_per_publisher_mib": round(self.rss_per_publisher / 2**20, 2),
            "segments": f"{self.segments_written}/{self.segments_expected}",
            "max_gap_s": round(self.max_gap_ms / 1000, 2),
            "latency_p50_ms": round(percentile(self.latencies_ms, 0.5), 1),
            "latency_p99_ms": round(percentile(self.latencies_ms, 0.99), 1),
            "latency_max_ms": round(max(self.latencies_ms, default=float("nan")), 1),
            "unmatched": self.unmatched,
            "on_time": self.on_time,
            "late_publishers": self.late_publishers,
            "snapshots": self.snapshots,
            "loadgen_cpu_s": round(self.loadgen_cpu_s, 2),
            "loadgen_max_lag_ms": round(self.max_loadgen_lag_ms, 1),
            "errors": self.errors[:3],
            "cpu_user_s": round(self.cpu_user_s, 2),
            "cpu_sys_s": round(self.cpu_sys_s, 2),
            "chunk_size": self.chunk_size,
            "chunk_label": self.chunk_label,
            "write_interval_ms": self.write_interval_ms,
            "regime": self.regime,
            "regime_figures": self.regime_figures,
            **(
                {
                    "part_answers": len(self.part_answer_ms),
                    "part_answer_p50_ms": round(percentile(self.part_answer_ms, 0.5), 1),
                    "part_answer_p99_ms": round(percentile(self.part_answer_ms, 0.99), 1),
                }
                if self.part_answer_ms
                else {}
            ),
        }


def analyse_publishers(
    result: TrialResult,
    publishers: list[dict[str, Any]],
    logs: dict[str, ChannelLog],
    written: dict[str, int],
    frag_duration_ms: int,
) -> None:
    """Fill the segment, gap and latency figures of `result` (channel name = publisher name)."""
    gap_bound = 0
    for pub in publishers:
        name = pub["name"]
        if pub["error"]:
            result.errors.append(f"{name}: {pub['error']}")
        result.max_loadgen_lag_ms = max(result.max_loadgen_lag_ms, pub["max_lag_ms"])
        keys = pub["keyframes"]
        key_ms = [k for k, _ in keys]
        result.segments_expected += expected_segments(key_ms, frag_duration_ms)
        result.segments_written += written.get(name, 0)
        if len(key_ms) >= 2:
            gop_ms = key_ms[1] - key_ms[0]
            segment_ms = -(-frag_duration_ms // gop_ms) * gop_ms  # FD rounded up to keyframes
            gap_bound = max(gap_bound, segment_ms + gop_ms)
        else:
            gop_ms = frag_duration_ms
        listings = logs[name].listings if name in logs else []
        for a, b in itertools.pairwise(listings):
            result.max_gap_ms = max(
                result.max_gap_ms, round((b.listed_wall_s - a.listed_wall_s) * 1000)
            )
        late = False
        cum_ms = 0
        for listing in listings:
            cum_ms += listing.duration_ms
            if pub["end"] and listing.listed_wall_s >= pub["end"]:
                continue  # flushed at unpublish: no keyframe closed it
            if not key_ms:
                result.unmatched += 1
                continue
            target = key_ms[0] + cum_ms
            i = bisect.bisect_left(key_ms, target)
            best = min((j for j in (i - 1, i) if 0 <= j < len(key_ms)),
                       key=lambda j: abs(key_ms[j] - target))  # fmt: skip
            if abs(key_ms[best] - target) > gop_ms // 2:
                result.unmatched += 1
                continue
            latency = (listing.listed_wall_s - keys[best][1]) * 1000
            result.latencies_ms.append(latency)
            late = late or latency > ON_TIME_LATENCY_MS
        result.late_publishers += late
    result.gap_bound_ms = gap_bound or 2 * frag_duration_ms
