"""The service's logs as an operator ships them: `livechannel serve` as a real process.

Text (the default) must not let a client forge a line: channel names and request paths come
from clients before any authentication. JSON (`--log-format json`) must parse line by line,
whatever happened: pushes, refusals, storage errors.
"""

from __future__ import annotations

import http.client
import json
import logging
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from livechannel.ops.logs import JsonFormatter, TextFormatter
from samples.make_sample import SampleSpec, make_sample
from tests.robustness.rtmp_session import RtmpSession, flv_tags, url_parts
from tests.robustness.serve_process import ServeProcess
from tests.support.moto import MotoServer
from tests.support.service import create_channel
from tests.support.tcp_proxy import Mode, TcpProxy

FORGED = "2031-01-01 00:00:00,000 ERROR livechannel.forged the attacker wrote this"
LOG_WAIT_S = 10.0


@pytest.fixture(scope="module")
def small_flv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("log-samples") / "small.flv"
    return make_sample(out, SampleSpec(duration_s=4, width=160, height=96, gop_s=1, bframes=0))


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[list[ServeProcess]]:
    started: list[ServeProcess] = []
    yield started
    for proc in started:
        proc.terminate(15)


def start(started: list[ServeProcess], data_dir: Path, *args: str) -> ServeProcess:
    proc = ServeProcess(data_dir, args=args).start()
    started.append(proc)
    return proc


def toml_buckets(storage: dict[str, object]) -> str:
    """One private bucket "live" whose [buckets.storage] table is `storage`."""
    lines = ["[[buckets]]", 'name = "live"', "[buckets.storage]"]
    lines += [f"{k} = {json.dumps(v)}" for k, v in storage.items()]
    return "\n".join(lines) + "\n"


def unsigned_publish(proc: ServeProcess, stream: str) -> str:
    """Publish without a signature (refused by the private bucket); its status description."""
    with RtmpSession(proc.rtmp_port, "live", stream) as session:
        status = session.publish()
    return str(status.description)


def http_get(port: int, path: str) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        return conn.getresponse().status
    finally:
        conn.close()


def wait_for(proc: ServeProcess, text: str) -> str:
    deadline = time.monotonic() + LOG_WAIT_S
    while text not in (log := proc.log()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert text in log, log[-3000:]
    return log


def test_text_log_escapes_control_characters(serve: list[ServeProcess], tmp_path: Path) -> None:
    proc = start(serve, tmp_path / "data")
    # A channel name whose %0A decodes to a newline, before any signature is checked...
    unsigned_publish(proc, "cam%0A" + FORGED.replace(" ", "%20"))
    # ...and a request path, which the HTTP log writes decoded (a carriage return: a
    # terminal shows the forged text over the real line).
    http_get(proc.http_port, "/live/x%0D" + FORGED.replace(" ", "%20"))
    log = wait_for(proc, "GET /live/x")
    lines = log.splitlines()
    assert not [line for line in lines if "livechannel.forged" in line.split(" ", 3)[:3]], log
    assert not any(line.startswith(FORGED[:10]) for line in lines), log
    assert "cam\\n" + FORGED in log  # the name is still there, readable, on its line
    assert "/live/x\\r" + FORGED in log


def test_json_log_parses_line_by_line(
    serve: list[ServeProcess], tmp_path: Path, small_flv: Path, moto: MotoServer
) -> None:
    # The bucket on S3 through a proxy the test can cut: storage errors, then recovery.
    proxy = TcpProxy(moto.port).start()
    try:
        _json_log_scenario(serve, tmp_path, small_flv, moto, proxy)
    finally:
        proxy.stop()


def _json_log_scenario(
    serve: list[ServeProcess], tmp_path: Path, small_flv: Path, moto: MotoServer, proxy: TcpProxy
) -> None:
    table = moto.storage_table(moto.new_bucket(), endpoint=f"http://127.0.0.1:{proxy.port}",
                               connect_timeout_s=1.0, retry_timeout_s=1.0)  # fmt: skip
    config = tmp_path / "livechannel.toml"
    config.write_text(toml_buckets(table))
    proc = ServeProcess(tmp_path / "data", config=config, args=["--log-format", "json"]).start()
    serve.append(proc)
    create_channel(proc.bucket(), "cam", frag_duration=1)
    # A push that works.
    port, app, stream, tc_url = url_parts(proc.signed_publish_url("cam"))
    tags = flv_tags(small_flv)
    with RtmpSession(port, app, stream, tc_url=tc_url) as session:
        assert session.publish().code == "NetStream.Publish.Start"
        session.send(tags)
    wait_for(proc, "push ended")
    # A refusal, with a control character in the name.
    assert "Signature" in unsigned_publish(proc, "cam%0Aforged")
    # Storage errors while a push runs, then storage comes back and the push ends cleanly.
    proxy.set_mode(Mode.REFUSE)
    with RtmpSession(port, app, stream, tc_url=tc_url) as session:
        assert session.publish().code == "NetStream.Publish.Start"
        session.send(tags)
        wait_for(proc, "storage failed")
        proxy.set_mode(Mode.FORWARD)
    wait_for(proc, "storage recovered")
    http_get(proc.http_port, "/live/nothing%1Bhere")

    records = []
    for line in proc.log().splitlines():
        if not line.startswith("{"):  # the banner (stdout, shared with stderr here)
            assert not any(f" {level} " in line for level in ("INFO", "WARNING", "ERROR")), line
            continue
        record = json.loads(line)
        assert {"time", "level", "logger", "event"} <= set(record), record
        records.append(record)
    started = next(r for r in records if r["event"].startswith("publishing"))
    assert started["bucket"] == "live" and started["channel"] == "cam"
    assert started["push_id"] >= 1 and started["peer"].startswith("127.0.0.1:")
    refused = next(r for r in records if r["event"].startswith("publish refused"))
    assert refused["channel"] == "cam\nforged" and "Signature" in refused["reason"]
    failed = [r for r in records if r["event"].startswith("storage failed")]
    assert failed and failed[0]["level"] == "ERROR" and failed[0]["channel"] == "cam", failed
    assert any(r.get("status") == 403 and "nothing\x1bhere" in r["event"] for r in records)
    assert all(r["time"].endswith("Z") for r in records)


def test_no_field_or_traceback_line_passes_for_a_record() -> None:
    """An exception's message may quote a client: its lines stay indented under the record."""
    try:
        raise ValueError("bad name\n" + FORGED)
    except ValueError:
        record = logging.LogRecord("livechannel.x", logging.ERROR, __file__, 1, "failed: %s",
                                   ("a\rb\x1b[2J",), exc_info=sys.exc_info())  # fmt: skip
    record.__dict__.update(channel="cam\n" + FORGED, peer="1.2.3.4:5", reason="Signature=abc")
    text = TextFormatter().format(record)
    first, *rest = text.split("\n")
    assert "a\\rb\\x1b[2J" in first and "cam\\n" + FORGED in first
    assert rest and all(line.startswith(" ") for line in rest), text
    assert "abc" not in text and "Signature=<redacted>" in text
    line = JsonFormatter().format(record)
    assert "\n" not in line
    parsed = json.loads(line)
    assert parsed["channel"] == "cam\n" + FORGED and parsed["reason"] == "Signature=<redacted>"
    assert FORGED in parsed["exception"] and parsed["level"] == "ERROR"
