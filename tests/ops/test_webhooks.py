"""Webhooks against a real receiver on loopback (tests/support/hook_receiver.py), which
verifies every signature the way docs/operations.md tells operators to: allow (and the
notifications of a push), deny (ffmpeg sees the hook's reason), slow (timeout), down
(retries, then counted drops; ingest unharmed)."""

from __future__ import annotations

import logging
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from livechannel.config import ConfigError, load
from livechannel.ops.webhook_config import WebhookConfig
from samples.make_sample import SampleSpec, make_sample
from tests.robustness.rtmp_session import RtmpSession, flv_tags, session_for
from tests.robustness.serve_process import free_port
from tests.support import publishers
from tests.support.hook_receiver import HookReceiver, verify
from tests.support.service import BUCKET, ServiceThread, create_channel

SECRET = "hook-secret-0123456789"
REFUSAL_TIMEOUT_S = 30.0
WAIT_S = 15.0


@pytest.fixture(scope="module")
def long_gop_flv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """6 s with a keyframe every 2 s: over a FragDuration of 1 s (a stream-health warning)."""
    out = tmp_path_factory.mktemp("hook-samples") / "gop2.flv"
    return make_sample(out, SampleSpec(duration_s=6, width=160, height=96, gop_s=2, bframes=0))


@pytest.fixture
def receiver() -> Iterator[HookReceiver]:
    hooks = HookReceiver(SECRET, deny_reason="quota exceeded for cam", slow_s=3.0).start()
    try:
        yield hooks
    finally:
        hooks.stop()


def service(data_dir: Path, hook: WebhookConfig) -> ServiceThread:
    svc = ServiceThread(data_dir)
    first = replace(svc.config.buckets[0], webhooks=hook)
    svc.config = replace(svc.config, buckets=(first,))
    return svc.start()


def hook_at(url: str, **kw: object) -> WebhookConfig:
    return WebhookConfig(url, SECRET, **kw)  # type: ignore[arg-type]


def test_allow_and_the_notifications_of_a_push(
    tmp_path: Path, receiver: HookReceiver, long_gop_flv: Path
) -> None:
    with service(tmp_path / "data", hook_at(receiver.url("/allow"))) as svc:
        create_channel(svc.bucket(), "cam", frag_duration=1)
        with session_for(svc, "cam") as session:
            assert session.publish().code == "NetStream.Publish.Start"
            session.send(flv_tags(long_gop_flv), pace=2.0)  # 3 s: heartbeats see the warning
        svc.wait_idle("cam")
        segments = svc.call(svc.store.segments_between(BUCKET, "cam", 0, 2**62))
        [done] = receiver.wait_for("on_publish_done")

    [asked] = receiver.events("on_publish")
    body = asked.json
    assert body["event"] == "on_publish" and (body["bucket"], body["channel"]) == (BUCKET, "cam")
    assert body["client_addr"].startswith("127.0.0.1:") and body["node"]
    assert "OSSAccessKeyId" in body["params"] and "Signature" not in body["params"]
    assert "Signature=" not in asked.body.decode()  # the publish URL's credential stays ours
    # Four senders: notifications may arrive out of order; `sequence` orders them.
    on_segment = sorted(receiver.events("on_segment"), key=lambda e: e.json["sequence"])
    assert [e.json["key"] for e in on_segment] == [s.key for s in segments]
    assert [e.json["sequence"] for e in on_segment] == [s.seq for s in segments]
    assert [e.json["duration_s"] for e in on_segment] == [s.duration_ms / 1000 for s in segments]
    assert len(receiver.events("on_playlist")) == len(segments)
    assert {e.json["key"] for e in receiver.events("on_playlist")} == {"cam/playlist.m3u8"}
    health = receiver.wait_for("on_stream_health")
    assert "long_gop" in health[0].json["warnings"]
    assert done.json["segments"] == len(segments) and done.json["push_id"] >= 1
    # Every request signed with the secret, with its own id, and headers matching the body.
    everything = receiver.events()
    assert everything and all(r.verified for r in everything)
    assert not verify("another-secret", asked.body, asked.headers["X-Livechannel-Signature"])
    ids = [r.headers["X-Livechannel-Delivery"] for r in everything]
    assert len(set(ids)) == len(ids)
    for r in everything:
        assert r.headers["X-Livechannel-Delivery"] == r.json["id"]
        assert r.headers["X-Livechannel-Timestamp"] == str(r.json["timestamp_ms"])
        assert r.headers["X-Livechannel-Event"] == r.json["event"]
        assert r.headers["Content-Type"] == "application/json"


def test_a_denying_hook_refuses_ffmpeg_with_its_reason(
    tmp_path: Path, receiver: HookReceiver, long_gop_flv: Path
) -> None:
    with service(tmp_path / "data", hook_at(receiver.url("/deny"))) as svc:
        create_channel(svc.bucket(), "cam")
        cmd = publishers.ffmpeg_copy(long_gop_flv, svc.signed_publish_url("cam"))
        r = publishers.run(cmd, timeout_s=REFUSAL_TIMEOUT_S)
        assert r.returncode != 0, "the publish was not refused"
        assert "quota exceeded for cam" in r.stderr, r.stderr
        assert svc.call(svc.store.history(BUCKET, "cam", 10)) == []  # never claimed the channel
        # Our own checks come first: an unsigned publish never reaches the hook.
        asked = len(receiver.events("on_publish"))
        with RtmpSession(svc.rtmp_port, "live", "cam") as unsigned:
            assert "Signature" in unsigned.publish().description
        assert len(receiver.events("on_publish")) == asked


def test_a_slow_hook_times_out(tmp_path: Path, receiver: HookReceiver) -> None:
    with service(tmp_path / "data", hook_at(receiver.url("/slow"), timeout_s=0.5)) as svc:
        create_channel(svc.bucket(), "cam")
        with session_for(svc, "cam") as session:
            start = time.monotonic()
            status = session.publish()
            waited_s = time.monotonic() - start
        assert status.code == "NetStream.Publish.Rejected"
        assert "did not answer within 0.5 s" in status.description
        assert waited_s < 2.0, waited_s


def test_a_down_receiver_costs_retries_then_counted_drops(
    tmp_path: Path, long_gop_flv: Path, caplog: pytest.LogCaptureFixture
) -> None:
    down = f"http://127.0.0.1:{free_port()}/hooks"  # nothing listens there
    hook = hook_at(down, retry_for_s=1.0, events=frozenset({"on_segment", "on_publish_done"}))
    caplog.set_level(logging.WARNING, logger="livechannel.ops.webhooks")
    with service(tmp_path / "data", hook) as svc:
        create_channel(svc.bucket(), "cam", frag_duration=1)
        with session_for(svc, "cam") as session:
            assert session.publish().code == "NetStream.Publish.Start"  # not asked: not listed
            session.send(flv_tags(long_gop_flv))
        svc.wait_idle("cam")
        segments = svc.call(svc.store.segments_between(BUCKET, "cam", 0, 2**62))
        assert len(segments) >= 2  # ingest went on as if no hook existed
        deadline = time.monotonic() + WAIT_S
        while True:
            text = urllib.request.urlopen(svc.endpoint + "/-/metrics", timeout=10).read().decode()
            dropped = _sample(
                text, 'livechannel_webhook_requests_total{event="on_segment",result="dropped"}'
            )
            if dropped >= len(segments):
                break
            assert time.monotonic() < deadline, text
            time.sleep(0.2)
        failed = _sample(
            text, 'livechannel_webhook_requests_total{event="on_segment",result="failed"}'
        )
        assert failed >= 2 * dropped  # every one was retried before it was dropped
    assert "webhook notifications dropped" in caplog.text


def _sample(text: str, series: str) -> float:
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_webhook_configuration_is_checked(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    good = '[[buckets]]\nname = "live"\n[buckets.webhooks]\nurl = "http://127.0.0.1:9/h"\n'
    config.write_text(good + 'secret = "s"\ntimeout_s = 1.5\nevents = ["on_segment"]\n')
    [bucket] = load(str(config), {}, {}).buckets
    assert bucket.webhooks == WebhookConfig(
        "http://127.0.0.1:9/h", "s", 1.5, events=frozenset({"on_segment"})
    )
    for bad in ("", 'secret = "s"\ntimeout_s = 0\n', 'secret = "s"\nevents = ["on_x"]\n'):
        config.write_text(good + bad)
        with pytest.raises(ConfigError, match="webhooks"):
            load(str(config), {}, {})
    config.write_text(good.replace("http://127.0.0.1:9/h", "file:///etc/passwd") + 'secret = "s"\n')
    with pytest.raises(ConfigError, match="url"):
        load(str(config), {}, {})
