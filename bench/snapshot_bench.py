#!/usr/bin/env python3
"""What a snapshot costs: the keyframes of the benchmark input, demuxed by our own code, turned
into JPEGs by `livechannel.hls.snapshot.encode_jpeg` (decode + JPEG encode), timed one at a time.

    python bench/snapshot_bench.py [--input FLV] [--rounds 3]

Prints ms of CPU per snapshot and the JPEG size, and what that means for a process: how many
snapshots per second one core makes, against what Interval 1 on N channels would ask for.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.chunkplan import DEFAULT_INPUT, load_flv
from livechannel.hls.snapshot import encode_jpeg
from livechannel.media.demux import Demuxer
from livechannel.media.flv import TAG_TYPE_VIDEO
from livechannel.media.frames import VideoConfig, VideoFrame

MAX_ROUNDS = 20  # each round encodes every keyframe of the input once


def keyframes(path: Path) -> tuple[VideoConfig | None, list[bytes]]:
    flv = load_flv(path)
    demuxer, config, frames = Demuxer(), None, []
    tags = [(t, 0, body) for t, body in flv.headers] + list(flv.media)
    for type_id, timestamp_ms, body in tags:
        if type_id != TAG_TYPE_VIDEO:
            continue
        for event in demuxer.video(timestamp_ms, body):
            if isinstance(event, VideoConfig):
                config = event
            elif isinstance(event, VideoFrame) and event.keyframe:
                frames.append(event.data)
    return config, frames


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--input", default=str(DEFAULT_INPUT))
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    path = Path(args.input)
    if not path.exists():
        from samples.make_sample import SampleSpec, make_sample

        make_sample(path, SampleSpec(duration_s=30.0))
    config, frames = keyframes(path)
    if not frames:
        sys.exit(f"{path}: no keyframes")
    cpu_ms, sizes = [], []
    for _ in range(min(args.rounds, MAX_ROUNDS)):
        for data in frames:
            start = time.process_time()
            jpeg = encode_jpeg(data)
            cpu_ms.append((time.process_time() - start) * 1000)
            assert jpeg is not None, "a keyframe of the input did not decode"
            sizes.append(len(jpeg))
    size = f"{config.width}x{config.height}" if config else "?"
    median, p90 = statistics.median(cpu_ms), statistics.quantiles(cpu_ms, n=10)[-1]
    jpeg_kib = statistics.median(sizes) / 1024
    print(f"input: {path.name}, {size}, {len(frames)} keyframes x {len(cpu_ms) // len(frames)}")
    print(f"CPU per snapshot: median {median:.1f} ms, p90 {p90:.1f} ms; JPEG {jpeg_kib:.0f} KiB")
    print(
        f"one core: ~{1000 / median:.0f} snapshots/s, i.e. Interval 1 on ~{1000 / median:.0f} "
        f"channels or Interval 5 on ~{5000 / median:.0f}; more are skipped and counted"
    )


if __name__ == "__main__":
    main()
