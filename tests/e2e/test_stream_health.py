"""Stream health (docs/hls.md): a keyframe interval longer than FragDuration is logged with advice,
and each push's measured keyframe interval, frame rate and bitrate are recorded in the store
(every heartbeat, and once more when the push ends) and served as JSON on `GET /-/status`:
signed (from loopback unsigned only with `status_loopback_unsigned`)."""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import oss2
import pytest
from aiohttp.test_utils import make_mocked_request

from livechannel.api import status as status_module
from livechannel.api.context import ApiContext
from livechannel.api.status import STATUS_PATH, collect_status, is_loopback, status_handler
from livechannel.auth.urls import ServiceUrls
from livechannel.errors import AccessDenied, SignatureDoesNotMatch
from livechannel.store.base import Acl, ChannelConfig
from livechannel.store.memory import MemoryStore
from samples.make_sample import SampleSpec, make_sample
from tests.support import publishers
from tests.support.rtmp_publisher import FlvTag, read_flv
from tests.support.service import (
    ACCESS_KEY_ID,
    ACCESS_KEY_SECRET,
    BUCKET,
    ServiceThread,
    create_channel,
)

LONG_GOP = SampleSpec(duration_s=25, width=320, height=180, fps=30, gop_s=10)
FRAG_DURATION_S = 5
PUSH_TIMEOUT_S = 60.0
LIVE_TIMEOUT_S = 15.0  # a paced publisher shows up in /-/status within a few heartbeats
BITRATE_WINDOW_MS = 5_000  # stats.WINDOW_MS: the bitrate is measured over this much media


@pytest.fixture(scope="module")
def svc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceThread]:
    data = tmp_path_factory.mktemp("health") / "data"
    with ServiceThread(data, status_loopback_unsigned=True).start() as service:
        yield service


def get_status(svc: ServiceThread, headers: dict[str, str] | None = None) -> Any:
    request = urllib.request.Request(svc.endpoint + STATUS_PATH, headers=headers or {})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.headers["Content-Type"].startswith("application/json")
        return json.load(response)


def channel_entry(status: Any, channel: str) -> Any:
    (entry,) = [c for c in status["channels"] if c["channel"] == channel]
    return entry


def window_bitrate_bps(tags: list[FlvTag]) -> float:
    """What the push's last BITRATE_WINDOW_MS of media carried, per track, summed."""
    total = 0.0
    for type_id in (8, 9):
        track = [t for t in tags if t.type_id == type_id and t.body[1] == 1]
        last_ms = track[-1].timestamp_ms
        recent = [t for t in track if t.timestamp_ms >= last_ms - BITRATE_WINDOW_MS]
        span_ms = recent[-1].timestamp_ms - recent[0].timestamp_ms
        total += sum(len(t.body) for t in recent[1:]) * 8000 / span_ms
    return total


def test_long_gop_is_warned_and_measured(
    svc: ServiceThread, sample_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    flv = make_sample(sample_dir / "health-gop10.flv", LONG_GOP)
    create_channel(svc.bucket(), "longgop", frag_duration=FRAG_DURATION_S, frag_count=3)
    with caplog.at_level(logging.WARNING, logger="livechannel.pipeline"):
        r = publishers.run(
            publishers.ffmpeg_copy(flv, svc.signed_publish_url("longgop"), realtime=False),
            timeout_s=PUSH_TIMEOUT_S,
        )
        assert r.returncode == 0, r.stderr
        svc.wait_idle("longgop")
    warnings = [
        rec.getMessage()
        for rec in caplog.records
        if rec.name == "livechannel.pipeline"
        and rec.levelno == logging.WARNING
        and "longgop" in rec.getMessage()
    ]
    assert len(warnings) == 1, warnings  # once per push, not once per keyframe
    assert "keyframes arrive every 10.0 s, longer than FragDuration 5 s" in warnings[0]
    assert "Keyframe Interval" in warnings[0] and "-g" in warnings[0]  # what to change

    # Recorded when the push ended, even though it lasted less than a heartbeat or two.
    segments = svc.call(svc.store.segments_between(BUCKET, "longgop", 0, 2**62))
    (ended,) = svc.call(svc.store.history(BUCKET, "longgop", 10))
    health = json.loads(ended.stats_json)["health"]
    assert health["segments"] == len(segments)  # final figures: after the last flush
    # Served from loopback without a signature.
    entry = channel_entry(get_status(svc), "longgop")
    assert entry["live"] is False and entry["status"] == "enabled"
    served = entry["last_push"]
    assert served["push_id"] == ended.push_id and served["end_ms"] == ended.end_ms
    health = served["stats"]["health"]
    assert health["keyframe_interval_ms"] == pytest.approx(10_000, abs=40)
    assert health["frame_rate"] == pytest.approx(LONG_GOP.fps, abs=0.5)
    assert health["bitrate_bps"] == pytest.approx(window_bitrate_bps(read_flv(flv)), rel=0.1)
    assert health["bitrate_bps"] == health["video_bitrate_bps"] + health["audio_bitrate_bps"]
    assert health["audio_bitrate_bps"] > 0
    assert served["stats"]["video"]["width"] == LONG_GOP.width


def test_status_lists_a_live_push(svc: ServiceThread, sample_dir: Path) -> None:
    flv = make_sample(
        sample_dir / "health-live.flv",
        SampleSpec(duration_s=20, width=320, height=180, gop_s=1, bframes=0),
    )
    create_channel(svc.bucket(), "onair", frag_duration=2, frag_count=3)
    publisher = publishers.start(publishers.ffmpeg_copy(flv, svc.signed_publish_url("onair")))
    try:
        deadline = time.monotonic() + LIVE_TIMEOUT_S
        while True:
            status = get_status(svc)
            live = [p for p in status["live"] if p["channel"] == "onair"]
            health = live[0]["stats"].get("health", {}) if live else {}
            if health.get("keyframe_interval_ms") is not None:
                break
            assert time.monotonic() < deadline, status
            time.sleep(0.2)
        assert live[0]["end_ms"] is None and live[0]["remote_addr"].startswith("127.0.0.1:")
        assert health["keyframe_interval_ms"] == pytest.approx(1_000, abs=40)
        entry = channel_entry(status, "onair")
        assert entry["live"] is True and entry["last_push"]["push_id"] == live[0]["push_id"]
    finally:
        publishers.stop(publisher)
    svc.wait_idle("onair")
    assert not [p for p in get_status(svc)["live"] if p["channel"] == "onair"]


def test_status_over_http_signed_and_virtual_hosted(svc: ServiceThread) -> None:
    auth = oss2.Auth(ACCESS_KEY_ID, ACCESS_KEY_SECRET)
    request = oss2.http.Request("GET", svc.endpoint + STATUS_PATH)
    auth._sign_request(request, "-", "status")
    signed = get_status(
        svc, {"Date": request.headers["date"], "Authorization": request.headers["authorization"]}
    )
    assert set(signed) == {"now_ms", "live", "channels", "truncated"}
    # A bad signature is refused even from loopback: a signature, if present, must be right.
    with pytest.raises(urllib.error.HTTPError) as bad:
        get_status(
            svc,
            {
                "Date": request.headers["date"],
                "Authorization": f"OSS {ACCESS_KEY_ID}:AAAAAAAAAAAAAAAAAAAAAAAAAAA=",
            },
        )
    assert bad.value.code == 403 and b"SignatureDoesNotMatch" in bad.value.read()
    # <bucket>.<domain>/-/status is the object "-/status" of that bucket, not the status.
    hosted = urllib.request.Request(
        svc.endpoint + STATUS_PATH, headers={"Host": f"{BUCKET}.127.0.0.1"}
    )
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(hosted, timeout=10)
    assert err.value.code in (403, 404) and b"<Error>" in err.value.read()


# --- who may read it: the handler with a remote address other than loopback ------------------


def remote_request(remote: str, headers: dict[str, str] | None = None, query: str = ""):  # type: ignore[no-untyped-def]
    transport = mock.Mock()
    transport.get_extra_info.side_effect = lambda name, default=None: (
        (remote, 40000) if name == "peername" else default
    )
    return make_mocked_request(
        "GET", STATUS_PATH + query, headers=headers or {}, transport=transport
    )


async def not_the_oss_api(request: object) -> None:
    raise AssertionError("path-style /-/status must not reach the OSS handler")


def make_handler(*, loopback_unsigned: bool):  # type: ignore[no-untyped-def]
    ctx = ApiContext(
        store=MemoryStore(),
        storages={},
        credentials={"id1": "secret1"},
        urls=ServiceUrls("example.com", 1935, 80),
        now_ms=lambda: int(time.time() * 1000),
        status_loopback_unsigned=loopback_unsigned,
    )
    return status_handler(ctx, not_the_oss_api)  # type: ignore[arg-type]


@pytest.fixture
def handler():  # type: ignore[no-untyped-def]
    return make_handler(loopback_unsigned=True)


async def test_unsigned_loopback_needs_the_option() -> None:
    """Any web page open in a browser on the host can make a loopback request."""
    with pytest.raises(AccessDenied):
        await make_handler(loopback_unsigned=False)(remote_request("127.0.0.1"))


def test_no_cors_on_operator_routes(tmp_path: Path) -> None:
    """A page of another origin must not read /-/status through a visitor's browser: no
    CORS headers there, on a service of default settings, signed or not; objects keep them."""
    with ServiceThread(tmp_path / "data").start() as svc:
        origin = {"Origin": "http://evil.example"}
        with pytest.raises(urllib.error.HTTPError) as refused:
            get_status(svc, origin)  # unsigned from loopback: refused by default
        refused.value.close()
        assert refused.value.code == 403
        assert "Access-Control-Allow-Origin" not in refused.value.headers
        auth = oss2.Auth(ACCESS_KEY_ID, ACCESS_KEY_SECRET)
        request = oss2.http.Request("GET", svc.endpoint + STATUS_PATH)
        auth._sign_request(request, "-", "status")
        signed = {
            "Date": request.headers["date"],
            "Authorization": request.headers["authorization"],
        }
        request = urllib.request.Request(svc.endpoint + STATUS_PATH, headers={**origin, **signed})
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200
            assert "Access-Control-Allow-Origin" not in response.headers
        # A public object read still answers CORS (players on other origins need it).
        obj = urllib.request.Request(svc.endpoint + f"/{BUCKET}/nothing.ts", headers=origin)
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(obj, timeout=10)
        missing.value.close()
        assert missing.value.headers["Access-Control-Allow-Origin"] == "*"


async def test_unsigned_remote_callers_are_refused(handler) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(AccessDenied):
        await handler(remote_request("203.0.113.9"))
    response = await handler(remote_request("127.0.0.1"))
    assert json.loads(response.body) == {
        "now_ms": mock.ANY,
        "live": [],
        "channels": [],
        "truncated": False,
    }


async def test_signed_remote_callers_are_served(handler) -> None:  # type: ignore[no-untyped-def]
    auth = oss2.Auth("id1", "secret1")
    request = oss2.http.Request("GET", "http://example.com" + STATUS_PATH)
    auth._sign_request(request, "-", "status")
    headers = {"Date": request.headers["date"], "Authorization": request.headers["authorization"]}
    response = await handler(remote_request("203.0.113.9", headers))
    assert response.status == 200
    url = auth._sign_url(
        oss2.http.Request("GET", "http://example.com" + STATUS_PATH), "-", "status", 60
    )
    response = await handler(remote_request("2001:db8::1", query="?" + url.split("?", 1)[1]))
    assert response.status == 200
    # Signed for another resource (GetService, "/"): not valid here.
    other = oss2.http.Request("GET", "http://example.com/")
    auth._sign_request(other, "", "")
    headers = {"Date": other.headers["date"], "Authorization": other.headers["authorization"]}
    with pytest.raises(SignatureDoesNotMatch):
        await handler(remote_request("203.0.113.9", headers))


@pytest.mark.parametrize(
    ("remote", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("::ffff:127.0.0.1", True),
        ("10.0.0.1", False),
        ("::ffff:10.0.0.1", False),
        ("2001:db8::1", False),
        ("", False),
        (None, False),
        ("not-an-ip", False),
    ],
)
def test_loopback_addresses(remote: str | None, loopback: bool) -> None:
    assert is_loopback(remote) is loopback


async def test_collect_status_pairs_channels_with_their_last_push(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = MemoryStore()
    await store.ensure_bucket("b", Acl.PRIVATE, 0)
    for name in ("a-live", "b-ended", "c-never", "d-extra"):
        await store.put_channel("b", name, ChannelConfig(), 0)
    old = await store.start_push("b", "a-live", "1.2.3.4:5", "w", 1)
    await store.end_push(old.push_id, 2)
    running = await store.start_push("b", "a-live", "1.2.3.4:6", "w", 3)
    await store.heartbeat(running.push_id, 4, '{"health":{"keyframe_interval_ms":2000}}')
    ended = await store.start_push("b", "b-ended", "1.2.3.4:7", "w", 5)
    await store.heartbeat(ended.push_id, 6, "not json")
    await store.end_push(ended.push_id, 7)
    monkeypatch.setattr(status_module, "LIST_PAGE", 2)
    monkeypatch.setattr(status_module, "MAX_STATUS_CHANNELS", 3)

    status = await collect_status(store, ["b"], 99)
    assert [p["push_id"] for p in status["live"]] == [running.push_id]  # type: ignore[index]
    by_name = {c["channel"]: c for c in status["channels"]}  # type: ignore[attr-defined]
    assert list(by_name) == ["a-live", "b-ended", "c-never"]  # the cap: 3 of 4
    assert status["truncated"] is True
    assert by_name["a-live"]["live"] is True
    assert by_name["a-live"]["last_push"]["stats"]["health"]["keyframe_interval_ms"] == 2000
    assert by_name["b-ended"]["live"] is False
    assert by_name["b-ended"]["last_push"]["end_ms"] == 7
    assert by_name["b-ended"]["last_push"]["stats"] == {}  # unreadable figures: left out
    assert by_name["c-never"]["last_push"] is None
    monkeypatch.setattr(status_module, "MAX_STATUS_CHANNELS", 4)
    assert (await collect_status(store, ["b"], 99))["truncated"] is False
