"""The benchmark's markdown: context, the side-by-side table, ratios, and the issue's checks."""

from __future__ import annotations

import math
import re
from pathlib import Path

from bench.chunkplan import FlvInput
from bench.metrics import TrialResult, percentile

DOCS_BEGIN = "<!-- bench:begin -->"
DOCS_END = "<!-- bench:end -->"
# The targets ("Done when").
MAX_CPU_RATIO = 2.0  # ours / nginx-rtmp CPU-s per stream-minute at 200 publishers
MIN_WORKER_SCALING = 1.7  # capacity with 2 workers / with 1
MIN_UNPACED_MB_PER_CORE = 50.0
MAX_P99_LATENCY_MS = 50.0
MAX_RSS_PER_PUBLISHER_MIB = 3.0
CHECK_N = 200
OURS = "livechannel --workers 1"  # the rows the targets are checked on
CAPACITY_STEP = 25  # the capacity search tries publisher counts that are multiples of this
CAPACITY_LABELS = {
    "ours": "livechannel (`serve --workers N`)",
    "nginx": "nginx-rtmp (`worker_processes N`)",
}


def _fmt(x: float, digits: int = 1) -> str:
    return "-" if math.isnan(x) else f"{x:.{digits}f}"


def _row(t: TrialResult) -> str:
    lat = t.latencies_ms
    cells = [
        str(t.n),
        t.server,
        _fmt(t.cpu_per_stream_min, 3),
        _fmt(t.cpu_pct_of_cores),
        _fmt(t.peak_rss / 2**20),
        _fmt(t.rss_per_publisher / 2**20, 2),
        f"{t.segments_written}/{t.segments_expected}",
        _fmt(t.max_gap_ms / 1000),
        f"{_fmt(percentile(lat, 0.5))} / {_fmt(percentile(lat, 0.99))}",
        "yes" if t.on_time else "**no**" + (f" ({t.errors[0][:60]})" if t.errors else ""),
        _fmt(100 * t.loadgen_cpu_s / t.loadgen_wall_s / t.cores if t.loadgen_wall_s else math.nan),
    ]
    return "| " + " | ".join(cells) + " |"


def _verdict(ok: bool) -> str:
    return "met" if ok else "**missed**"


def capacity_lines(capacities: dict[str, dict[int, tuple[int, int | None]]]) -> list[str]:
    """Per server (ours, nginx-rtmp): the on-time counts with 1 and 2 workers, and their ratio."""
    lines = []
    for server, found in capacities.items():
        label = CAPACITY_LABELS.get(server, server)
        for workers, (ok, bad) in sorted(found.items()):
            if not ok and bad is None:
                lines.append(f"- {label}, N = {workers}: not measured (time budget spent).")
                continue
            upper = f", {bad} were not" if bad is not None else " (no larger count was tried)"
            lines.append(f"- {label}, N = {workers}: {ok} publishers stayed on time{upper}.")
        ok1, ok2 = found.get(1, (0, None))[0], found.get(2, (0, None))[0]
        if ok1 and ok2:
            ratio = ok2 / ok1
            target = f" (target {MIN_WORKER_SCALING}x: {_verdict(ratio >= MIN_WORKER_SCALING)})"
            lines.append(
                f"- {label}: two workers / one = {ratio:.2f}x{target if server == 'ours' else ''}."
            )
    if lines:
        lines.append(
            f"- Each count comes from a bracket search of a few trials in steps of "
            f"{CAPACITY_STEP}, so it is within one step of its true value."
        )
    return lines


def _checks(paced: list[TrialResult], unpaced: list[TrialResult]) -> list[str]:
    ours = {t.n: t for t in paced if t.server == OURS}
    nginx = {t.n: t for t in paced if t.server.startswith("nginx")}
    out = []
    if CHECK_N in ours and CHECK_N in nginx:
        o, g = ours[CHECK_N], nginx[CHECK_N]
        ours_cpu, nginx_cpu = o.cpu_per_stream_min, g.cpu_per_stream_min
        ratio = ours_cpu / nginx_cpu
        p99 = percentile(o.latencies_ms, 0.99)
        rss = o.rss_per_publisher / 2**20
        out += [
            f"- CPU at {CHECK_N} publishers: ours {ours_cpu:.3f} vs nginx-rtmp {nginx_cpu:.3f} "
            f"CPU-s per stream-minute = {ratio:.2f}x (target <= {MAX_CPU_RATIO}x: "
            f"{_verdict(ratio <= MAX_CPU_RATIO)}).",
            f"- Segments at {CHECK_N}: {o.segments_written}/{o.segments_expected} written, "
            f"largest gap {o.max_gap_ms / 1000:.1f} s (bound {o.gap_bound_ms / 1000:.0f} s = one "
            f"segment + one GOP: {_verdict(o.on_time)}).",
            f"- p99 playlist latency at {CHECK_N}: {p99:.1f} ms (target <= "
            f"{MAX_P99_LATENCY_MS:.0f} ms: {_verdict(p99 <= MAX_P99_LATENCY_MS)}).",
            f"- RSS per publisher at {CHECK_N}: {rss:.2f} MiB (target <= "
            f"{MAX_RSS_PER_PUBLISHER_MIB} MiB: {_verdict(rss <= MAX_RSS_PER_PUBLISHER_MIB)}).",
        ]
    for t in unpaced:
        if t.server == OURS:
            rate = t.mb_per_cpu_s
            out.append(
                f"- One unpaced publisher: {rate:.0f} MB/s per core (target >= "
                f"{MIN_UNPACED_MB_PER_CORE:.0f}: {_verdict(rate >= MIN_UNPACED_MB_PER_CORE)})."
            )
    return out


def _unpaced_line(t: TrialResult) -> str:
    errors = f" (errors: {t.errors[0][:80]})" if t.errors else ""
    return f"- {t.server}: {t.mb_per_s:.0f} MB/s, {t.mb_per_cpu_s:.0f} MB/s per core{errors}"


def _snapshot_lines(paced: list[TrialResult], gop_s: float) -> list[str]:
    """For the rows with snapshots on: how many were stored against one per keyframe."""
    rows = [t for t in paced if "snapshots" in t.server]
    if not rows or not gop_s:
        return []
    out = ["", "Snapshots stored (with Interval <= GOP, one is due per keyframe):", ""]
    for t in rows:
        due = t.n * t.send_s / gop_s
        out.append(f"- {t.n} publishers, {t.server}: {t.snapshots} of ~{due:.0f} due")
    return out


def markdown(
    machine: dict[str, str],
    flv: FlvInput,
    paced: list[TrialResult],
    unpaced: list[TrialResult],
    capacity: list[str],
    elapsed_s: float,
    command: str = "python bench/run_bench.py --update-docs",
    trials: str = "",
    matrix: bool = False,
) -> str:
    gop = (flv.keyframes_ms[1] - flv.keyframes_ms[0]) / 1000 if len(flv.keyframes_ms) > 1 else 0
    lines = [
        f"Measured {machine['date']} in {elapsed_s / 60:.1f} minutes (`{command}`).",
        "",
        f"- Machine: {machine['cpu']}, Linux {machine['kernel']} ({machine['writeback']}); load "
        "generator on the same box.",
        f"- Versions: Python {machine['python']}; livechannel {machine['livechannel']}; "
        f"{machine['nginx']}.",
        f"- Input: `{flv.path.name}`, {flv.media_bytes_per_s * 8 / 1e6:.2f} Mbit/s H.264/AAC FLV, "
        f"{flv.period_ms / 1000:.0f} s looped, keyframe every {gop:.0f} s; FragDuration 5, "
        "FragCount 3 (nginx: `hls_fragment 5s`, `hls_playlist_length 15s`).",
        *([trials] if trials else []),
        "",
        "| publishers | server | CPU-s per stream-min | CPU % of all cores | peak RSS MiB "
        "| RSS per publisher MiB | segments written/expected | largest gap s "
        "| playlist latency p50 / p99 ms | on time | loadgen CPU % of all cores |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---|---:|",
        *(_row(t) for t in paced),
        *_snapshot_lines(paced, gop),
        "",
        *_section(
            "Side by side, per page-cache regime and publisher behaviour:",
            matrix_lines(paced) if matrix else [],
        ),
        *_section(
            "Unpaced (one publisher sending as fast as the server reads):",
            [_unpaced_line(t) for t in unpaced],
        ),
        "Largest real-time publisher count on time, with N workers:",
        "",
        *(capacity or ["- not measured in this run"]),
        "",
        *_section("Against the issue's targets:", _checks(paced, unpaced)),
    ]
    return "\n".join(lines).rstrip("\n") + "\n"


def _cell_key(t: TrialResult) -> tuple[str, str, float, int]:
    return (t.regime, t.chunk_label or str(t.chunk_size), t.write_interval_ms, t.n)


def _chunk_order(label: str) -> int:
    return int(label) if label.isdigit() else 1 << 40  # the server's own size last


def chunk_cell(label: str, ours: TrialResult | None, nginx: TrialResult | None) -> str:
    """The chunk size column: the size, or the server's own (each server's, when they differ)."""
    if label.isdigit():
        return label
    sizes = " / ".join(str(t.chunk_size) for t in (ours, nginx) if t is not None)
    return f"server's ({sizes})"


def matrix_lines(paced: list[TrialResult]) -> list[str]:
    """Ours and nginx-rtmp side by side per (page cache, chunk size, write interval, N): the
    CPU split into user and system time (the kernel's work billed to each server)."""
    cells = {_cell_key(t) for t in paced}
    lines = [
        "| page cache | chunk bytes | write every ms | publishers | livechannel CPU-s per "
        "stream-min (user + sys) | nginx-rtmp | ours / nginx | RSS per publisher MiB, ours "
        "/ nginx | playlist p99 ms, ours / nginx | on time, ours / nginx |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for key in sorted(cells, key=lambda k: (k[0], _chunk_order(k[1]), k[2], k[3])):
        rows = [t for t in paced if _cell_key(t) == key]
        ours = next((t for t in rows if t.server == OURS), None)
        nginx = next((t for t in rows if t.server.startswith("nginx")), None)

        def cpu(t: TrialResult | None) -> str:
            if t is None or not t.window_s:
                return "-"
            per = t.n * t.window_s / 60
            return (
                f"{t.cpu_per_stream_min:.3f} ({t.cpu_user_s / per:.3f} + {t.cpu_sys_s / per:.3f})"
            )

        def pair(f: str, a: float | None, b: float | None) -> str:
            show = ["-" if x is None or math.isnan(x) else format(x, f) for x in (a, b)]
            return " / ".join(show)

        ratio = (
            ours.cpu_per_stream_min / nginx.cpu_per_stream_min
            if ours and nginx and ours.window_s and nginx.window_s
            else math.nan
        )
        lines.append(
            "| "
            + " | ".join(
                [
                    key[0] or "asis",
                    chunk_cell(key[1], ours, nginx),
                    f"{key[2]:g}",
                    str(key[3]),
                    cpu(ours),
                    cpu(nginx),
                    _fmt(ratio, 2) + "x",
                    pair(
                        ".2f",
                        ours and ours.rss_per_publisher / 2**20,
                        nginx and nginx.rss_per_publisher / 2**20,
                    ),
                    pair(
                        ".1f",
                        ours and percentile(ours.latencies_ms, 0.99),
                        nginx and percentile(nginx.latencies_ms, 0.99),
                    ),
                    " / ".join(
                        "-" if t is None else ("yes" if t.on_time else "**no**")
                        for t in (ours, nginx)
                    ),
                ]
            )
            + " |"
        )
    return lines


def _section(title: str, lines: list[str]) -> list[str]:
    """A titled list, or nothing when the run measured nothing for it."""
    return [title, "", *lines, ""] if lines else []


def update_docs(path: Path, text: str) -> None:
    doc = path.read_text() if path.exists() else f"{DOCS_BEGIN}\n{DOCS_END}\n"
    pattern = re.compile(re.escape(DOCS_BEGIN) + ".*?" + re.escape(DOCS_END), re.S)
    path.write_text(pattern.sub(lambda _: f"{DOCS_BEGIN}\n{text}{DOCS_END}", doc))
