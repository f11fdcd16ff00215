"""Debian's Prometheus server scrapes `livechannel serve --workers 2` under real pushes, and
what it stored is queried back through its HTTP API: publishers live, RTMP bytes received
and segments written match what the test pushed, whichever worker each scrape reached."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from samples.make_sample import SampleSpec, make_sample
from tests.robustness.rtmp_session import RtmpSession, flv_tags, url_parts
from tests.robustness.serve_process import ServeProcess, free_port
from tests.support.service import create_channel

pytestmark = pytest.mark.slow

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
SCRAPE_INTERVAL_S = 1
START_TIMEOUT_S = 20.0
WAIT_S = 20.0
CHANNELS = ("a", "b", "c")
DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "livechannel.json"


@pytest.fixture(scope="module")
def paced_flv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("prom-samples") / "small.flv"
    return make_sample(out, SampleSpec(duration_s=6, width=160, height=96, gop_s=1, bframes=0))


@pytest.fixture
def service(tmp_path: Path) -> Iterator[ServeProcess]:
    proc = ServeProcess(tmp_path / "data", args=["--workers", "2"]).start()
    try:
        yield proc
    finally:
        proc.terminate(15)


@pytest.fixture
def prometheus(tmp_path: Path, service: ServeProcess) -> Iterator[str]:
    """A Prometheus server scraping the service's /-/metrics every second; its API URL."""
    if not Path(PROMETHEUS).exists():
        pytest.fail("Debian's prometheus package is missing (scripts/test.sh installs it)")
    config = tmp_path / "prometheus.yml"
    config.write_text(
        f"global:\n  scrape_interval: {SCRAPE_INTERVAL_S}s\n  scrape_timeout: 900ms\n"
        "scrape_configs:\n  - job_name: livechannel\n    metrics_path: /-/metrics\n"
        f"    static_configs:\n      - targets: ['127.0.0.1:{service.http_port}']\n"
    )
    port = free_port()
    log = open(tmp_path / "prometheus.log", "wb")  # noqa: SIM115 - the child owns it
    proc = subprocess.Popen(
        [PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{port}"],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    log.close()
    api = f"http://127.0.0.1:{port}/api/v1"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not _up(api):
            assert proc.poll() is None, (tmp_path / "prometheus.log").read_text()
            assert time.monotonic() < deadline, (tmp_path / "prometheus.log").read_text()
            time.sleep(0.2)
        yield api
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def _up(api: str) -> bool:
    """The scrape target is up (Prometheus serves, and scraped us at least once)."""
    try:
        return query(api, 'up{job="livechannel"}') == 1
    except OSError:
        return False


def query(api: str, promql: str) -> float | None:
    url = f"{api}/query?{urllib.parse.urlencode({'query': promql})}"
    with urllib.request.urlopen(url, timeout=5) as response:
        answer = json.load(response)
    assert answer["status"] == "success", answer
    result = answer["data"]["result"]
    return float(result[0]["value"][1]) if result else None


def wait_for(api: str, promql: str, expected: float) -> None:
    deadline = time.monotonic() + WAIT_S
    while (got := query(api, promql)) != expected:
        assert time.monotonic() < deadline, f"{promql} = {got}, expected {expected}"
        time.sleep(0.3)


def dashboard_queries() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]


def test_prometheus_sees_the_whole_service(
    service: ServeProcess, prometheus: str, paced_flv: Path
) -> None:
    bucket = service.bucket()
    for channel in CHANNELS:
        create_channel(bucket, channel, frag_duration=1)
    tags = flv_tags(paced_flv)
    sessions = []
    try:
        for channel in CHANNELS:  # fresh connections: the kernel spreads them over the workers
            port, app, stream, tc_url = url_parts(service.signed_publish_url(channel))
            session = RtmpSession(port, app, stream, tc_url=tc_url)
            sessions.append(session)
            assert session.publish().code == "NetStream.Publish.Start"
        # Live for a few scrapes: send the first half of each stream, then hold.
        for session in sessions:
            session.send(tags[: len(tags) // 2])
        wait_for(prometheus, "livechannel_publishers_live", len(CHANNELS))
        wait_for(prometheus, "livechannel_metrics_workers_answered", 2)
        for session in sessions:
            session.send(tags[len(tags) // 2 :])
        sent = sum(s.bytes_sent for s in sessions)
    finally:
        for session in sessions:
            session.close()
    wait_for(prometheus, "livechannel_publishers_live", 0)
    segments = sum(
        1
        for channel in CHANNELS
        for obj in bucket.list_objects(prefix=f"{channel}/", max_keys=1000).object_list
        if obj.key.endswith(".ts")
    )
    assert segments >= 3 * len(CHANNELS)
    wait_for(prometheus, "livechannel_rtmp_received_bytes_total", sent)
    wait_for(prometheus, "livechannel_segments_written_total", segments)
    accepted = 'livechannel_publishes_total{result="accepted"}'
    wait_for(prometheus, accepted, len(CHANNELS))
    puts = query(prometheus, "sum(livechannel_storage_put_duration_seconds_count)")
    assert puts is not None and puts >= segments
    # The Grafana dashboard's queries are valid PromQL against these series.
    for expr in dashboard_queries():
        query(prometheus, expr.replace("$__rate_interval", "1m").replace("$instance", ".*")
              .replace("$job", ".*"))  # fmt: skip
