"""hls.js (lowLatencyMode, headless Chromium) plays an LL-HLS channel from a node that does
not own its push: node B redirects the player to node A's advertised URL (a cross-origin
307 that CORS must let through), where two workers serve it, half of the requests handed
from the worker without the push to the one with it (api/owners.py). The player must stay
on the parts: classic HLS of this channel plays three target durations (3 s) behind live or
more, LL-HLS about PART-HOLD-BACK (1.5 s) plus a part."""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import pytest
import requests

from tests.interop.browser import PlayerServer, play_in_chromium
from tests.robustness.serve_process import ServeProcess, free_port
from tests.support import publishers
from tests.support.service import create_channel

pytestmark = pytest.mark.browser

PUSH_S = 60  # longer than the run: the publisher is stopped at the end
PLAY_S = 10.0
SETTLE_SAMPLES = 15  # the first 3 s of samples: hls.js still finding its position
BUDGET_S = 40.0
CLASSIC_FLOOR_S = 3.0  # three target durations of FragDuration 1: where classic HLS would sit
FIRST_PARTS_TIMEOUT_S = 20.0
LL_TOML = """
[[buckets]]
name = "live"
acl = "public-read"
[buckets.hls]
segment_format = "fmp4"
part_duration_s = 0.5
"""


def test_hls_js_plays_ll_hls_through_another_node(tmp_path: Path) -> None:
    config = tmp_path / "ll.toml"
    config.write_text(LL_TOML)
    store = f"sqlite:///{tmp_path / 'shared.db'}"
    a_port = free_port()
    a_url = f"http://127.0.0.1:{a_port}"
    a_args = ["--store", store, "--node-id", "node-a", "--advertise-url", a_url, "--workers", "2"]
    a = ServeProcess(tmp_path / "a", config=config, http_port=a_port, args=a_args)
    b = ServeProcess(tmp_path / "b", config=config, args=["--store", store, "--node-id", "node-b"])
    a.start()
    pub = None
    try:
        b.start()
        create_channel(a.bucket(), "cam", frag_duration=1, frag_count=4)
        pub = publishers.start(publishers.ffmpeg_live(
            a.signed_publish_url("cam"), duration_s=PUSH_S, gop_s=1, bframes=0))  # fmt: skip
        src = f"http://127.0.0.1:{b.http_port}/live/cam/playlist.m3u8"
        deadline = time.monotonic() + FIRST_PARTS_TIMEOUT_S
        while "#EXT-X-PART:" not in (text := requests.get(src, timeout=10).text):
            assert time.monotonic() < deadline, text
            time.sleep(0.2)
        with PlayerServer() as page:
            report = play_in_chromium(page, src, seconds=PLAY_S, budget_s=BUDGET_S,
                                      workdir=tmp_path / "chromium", low_latency=True)  # fmt: skip
        assert report["outcome"] == "played", report
        samples = [float(x) for x in report["latency_s"]][SETTLE_SAMPLES:]
        assert len(samples) >= 10, report
        p50 = statistics.median(samples)
        print(f"hls.js through another node: {p50:.2f} s behind live (p50)")
        assert p50 < CLASSIC_FLOOR_S, report
    finally:
        if pub is not None:
            publishers.stop(pub)
        if b.proc is not None:
            b.terminate(15)
        a.terminate(15)
    assert "Traceback" not in a.log() + b.log()
