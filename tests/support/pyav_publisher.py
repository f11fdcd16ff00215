"""Publish an FLV file to an RTMP URL with PyAV (libavformat's RTMP client, newer than the CLI's).

python -m tests.support.pyav_publisher FILE URL [--realtime]
"""

from __future__ import annotations

import argparse
import sys
import time

import av


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("input")
    p.add_argument("url")
    p.add_argument("--realtime", action="store_true")
    args = p.parse_args()
    src = av.open(args.input)
    try:
        out = av.open(args.url, "w", format="flv")
    except av.error.FFmpegError as e:
        print(f"connect failed: {e}", file=sys.stderr)
        return 1
    mapping = {}
    for stream in src.streams:
        if stream.type in ("video", "audio"):
            try:
                mapping[stream.index] = out.add_stream_from_template(stream)
            except av.codec.codec.UnknownCodecError:  # AV1: its decoder has no encoder twin
                mapping[stream.index] = out.add_stream_from_template(stream, opaque=True)
    start = time.monotonic()
    try:
        for packet in src.demux():
            if packet.stream.index not in mapping or packet.dts is None:
                continue
            if args.realtime:
                due = float(packet.dts * packet.time_base)
                delay = due - (time.monotonic() - start)
                if delay > 0:
                    time.sleep(delay)
            packet.stream = mapping[packet.stream.index]
            out.mux(packet)
        out.close()
    except av.error.FFmpegError as e:
        print(f"publish failed: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
