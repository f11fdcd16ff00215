"""GET /-/metrics: what a push, a refusal and API calls leave in the figures, the access
options (bearer token, a listener of its own), the per-channel bound, and one scrape for the
whole service with --workers 2.

Counters are process-wide (a test process may run several services one after another), so
the in-process tests compare a scrape before with one after.
"""

from __future__ import annotations

import re
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from livechannel.config import Limits, Listen
from samples.make_sample import SampleSpec, make_sample
from tests.robustness.rtmp_session import RtmpSession, flv_tags, session_for, url_parts
from tests.robustness.serve_process import ServeProcess
from tests.support.service import BUCKET, ServiceThread, create_channel

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]
WAIT_S = 10.0


@pytest.fixture(scope="module")
def small_flv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("metrics-samples") / "small.flv"
    return make_sample(out, SampleSpec(duration_s=4, width=160, height=96, gop_s=1, bframes=0))


DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "livechannel.json"


def families(url: str) -> set[str]:
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    return {f.name for f in text_string_to_metric_families(text)}


def scrape(url: str, headers: dict[str, str] | None = None) -> Samples:
    request = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        assert "Access-Control-Allow-Origin" not in response.headers
        text = response.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_a_push_and_a_refusal_in_the_figures(tmp_path: Path, small_flv: Path) -> None:
    limits = Limits(max_metric_channels=1)
    with ServiceThread(tmp_path / "data", metrics_per_channel=True, limits=limits).start() as svc:
        url = svc.endpoint + "/-/metrics"
        create_channel(svc.bucket(), "cam", frag_duration=1)
        create_channel(svc.bucket(), "other", frag_duration=1)
        before = scrape(url)
        tags = flv_tags(small_flv)
        with session_for(svc, "cam") as cam, session_for(svc, "other") as other:
            assert cam.publish().code == "NetStream.Publish.Start"
            assert other.publish().code == "NetStream.Publish.Start"
            cam.send(tags)
            during = scrape(url)
            publishing = cam.bytes_sent + other.bytes_sent
        with RtmpSession(svc.rtmp_port, "live", "cam") as unsigned:
            assert unsigned.publish().level == "error"
            refused = unsigned.bytes_sent
        svc.wait_idle("cam")
        svc.wait_idle("other")
        after = scrape(url)
        exported = families(url)
        segments = svc.call(svc.store.segments_between(BUCKET, "cam", 0, 2**62))

    assert value(during, "livechannel_publishers_live") == 2
    assert value(during, "livechannel_rtmp_connections") == 2
    # Per-channel series: bounded to one channel (the first by name), the other counted.
    channel_series = [k for k in during if k[0] == "livechannel_channel_segments_written_total"]
    assert channel_series == [
        ("livechannel_channel_segments_written_total", (("bucket", BUCKET), ("channel", "cam")))
    ]
    assert value(during, "livechannel_channel_series_omitted") == 1
    assert value(after, "livechannel_publishers_live") == 0

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    # Every byte the publishers sent, handshakes and commands included (of the refused one,
    # what arrived before the server closed: it may have sent more meanwhile).
    received = delta("livechannel_rtmp_received_bytes_total")
    assert publishing < received <= publishing + refused
    assert delta("livechannel_publishes_total", result="accepted", reason="") == 2
    assert delta("livechannel_publishes_total", result="refused", reason="auth") == 1
    assert len(segments) >= 3
    assert delta("livechannel_segments_written_total") == len(segments)
    assert delta("livechannel_segment_duration_seconds_count") == len(segments)
    assert delta("livechannel_segment_duration_seconds_sum") == pytest.approx(
        sum(s.duration_ms for s in segments) / 1000
    )
    assert delta("livechannel_playlist_latency_seconds_count") == len(segments)
    # A segment put and a playlist put per segment (plus the final playlist).
    puts = delta("livechannel_storage_put_duration_seconds_count", backend="local")
    assert puts >= 2 * len(segments)
    assert delta("livechannel_store_operation_duration_seconds_count", operation="add_segment") == (
        len(segments)
    )
    assert value(after, "livechannel_http_requests_total", operation="PutLiveChannel", status="200")
    assert value(after, "livechannel_http_requests_total", operation="Metrics", status="200") >= 2
    assert value(after, "process_cpu_seconds_total") > 0
    # The Grafana dashboard (deploy/grafana) is built on families we export.
    used = set(re.findall(r"\b((?:livechannel|process)_[a-z_]+)", DASHBOARD.read_text()))
    assert len(used) > 15
    for name in used:
        base = re.sub(r"_(bucket|sum|count|total)$", "", name)
        assert base in exported, name


def test_bearer_token_and_a_listener_of_its_own(tmp_path: Path) -> None:
    with ServiceThread(tmp_path / "a", metrics_token="s3cret-token").start() as svc:
        url = svc.endpoint + "/-/metrics"
        with pytest.raises(urllib.error.HTTPError) as refused:
            scrape(url)
        refused.value.close()
        assert refused.value.code == 401
        with pytest.raises(urllib.error.HTTPError) as wrong:
            scrape(url, {"Authorization": "Bearer nope"})
        wrong.value.close()
        assert wrong.value.code == 401
        assert "livechannel_publishers_live" in {
            k[0] for k in scrape(url, {"Authorization": "Bearer s3cret-token"})
        }
    listen = Listen("127.0.0.1", 0)
    with ServiceThread(tmp_path / "b", metrics_listen=listen).start() as svc:
        assert svc.running is not None and svc.running.metrics_port
        own = f"http://127.0.0.1:{svc.running.metrics_port}/-/metrics"
        assert ("livechannel_publishers_live", ()) in scrape(own)
        with pytest.raises(urllib.error.HTTPError) as elsewhere:
            scrape(svc.endpoint + "/-/metrics")  # not on the API port any more
        elsewhere.value.close()
        assert elsewhere.value.code in (400, 404)  # the OSS API: "-" is no bucket


@pytest.fixture
def two_workers(tmp_path: Path) -> Iterator[ServeProcess]:
    proc = ServeProcess(tmp_path / "data", args=["--workers", "2"]).start()
    try:
        yield proc
    finally:
        proc.terminate(15)


def test_one_scrape_covers_every_worker(two_workers: ServeProcess, small_flv: Path) -> None:
    """Whichever worker the kernel hands a scrape to, it answers for both."""
    proc = two_workers
    url = f"http://127.0.0.1:{proc.http_port}/-/metrics"
    create_channel(proc.bucket(), "a", frag_duration=1)
    create_channel(proc.bucket(), "b", frag_duration=1)
    sessions: list[RtmpSession] = []
    try:
        # Fresh connections: the kernel may put each on either worker.
        for channel in ("a", "b", "a"):  # the second "a" is refused: already live
            port, app, stream, tc_url = url_parts(proc.signed_publish_url(channel))
            session = RtmpSession(port, app, stream, tc_url=tc_url)
            sessions.append(session)
            session.publish()
        deadline = time.monotonic() + WAIT_S
        while True:
            samples = [scrape(url) for _ in range(6)]
            # Both workers answer once both have started (the banner is the first one's).
            if all(
                value(s, "livechannel_publishers_live") == 2
                and value(s, "livechannel_metrics_workers_answered") == 2
                for s in samples
            ):
                break
            assert time.monotonic() < deadline, samples[-1]
            time.sleep(0.2)
        publishing = sessions[0].bytes_sent + sessions[1].bytes_sent
        sent = publishing + sessions[2].bytes_sent  # the refused one's may not all arrive
        for s in samples:
            assert value(s, "livechannel_metrics_workers_answered") == 2
            assert publishing < value(s, "livechannel_rtmp_received_bytes_total") <= sent
            assert value(s, "livechannel_publishes_total", result="accepted", reason="") == 2
            refused = value(
                s, "livechannel_publishes_total", result="refused", reason="already_live"
            )
            assert refused == 1
    finally:
        for session in sessions:
            session.close()
