"""`/-/healthz` and `/-/readyz` for probes: unauthenticated, and readiness follows the real
backends — a bucket whose S3 endpoint stops answering, a metadata store that is gone."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from pathlib import Path

from livechannel.config import BucketConfig
from livechannel.ops.health import READY_CACHE_S, READY_CHECK_TIMEOUT_S
from livechannel.store.base import Acl
from tests.support.moto import MotoServer
from tests.support.service import ServiceThread
from tests.support.tcp_proxy import TcpProxy

# A failed check answers within the check's own bound, plus a request's slack.
PROBE_BOUND_S = READY_CHECK_TIMEOUT_S + 3.0


def probe(svc: ServiceThread, path: str) -> tuple[int, dict[str, object], float]:
    """Plain GET, no signature (as a prober sends it): status, JSON body, seconds taken."""
    started = time.monotonic()
    status, body = svc.probe(path, timeout_s=PROBE_BOUND_S)
    return status, body, time.monotonic() - started


def test_readyz_follows_a_bucket_whose_s3_endpoint_stops(tmp_path: Path, moto: MotoServer) -> None:
    s3 = TcpProxy(moto.port).start()  # the bucket's S3 endpoint, as the service sees it
    table = moto.storage_table(moto.new_bucket(), endpoint=f"http://127.0.0.1:{s3.port}")
    svc = ServiceThread(tmp_path / "data", extra_buckets=(BucketConfig("vod", Acl.PRIVATE, table),))
    with svc.start():
        status, body, _ = probe(svc, "/-/healthz")
        assert (status, body) == (200, {"status": "ok"})
        status, body, _ = probe(svc, "/-/readyz")
        assert status == 200, body
        assert body["checks"] == {"store": "ok", "bucket:live": "ok", "bucket:vod": "ok"}

        s3.stop()  # connections to the endpoint are now refused
        time.sleep(READY_CACHE_S)
        status, body, took_s = probe(svc, "/-/readyz")
        assert status == 503, body
        assert body["status"] == "unavailable" and body["down"] == ["bucket:vod"]
        checks = body["checks"]
        assert isinstance(checks, dict) and checks["store"] == checks["bucket:live"] == "ok"
        assert checks["bucket:vod"] != "ok"
        assert took_s < PROBE_BOUND_S
        # Liveness is not readiness: the process still serves.
        assert probe(svc, "/-/healthz")[0] == 200


def test_readyz_names_a_store_that_is_gone(service: ServiceThread) -> None:
    assert probe(service, "/-/readyz")[0] == 200
    service.call(service.store.close())
    time.sleep(READY_CACHE_S)
    status, body, _ = probe(service, "/-/readyz")
    assert status == 503, body
    assert body["down"] == ["store"]
    checks = body["checks"]
    assert isinstance(checks, dict) and checks["store"] != "ok"
    assert probe(service, "/-/healthz")[0] == 200


def test_probes_are_path_style_only(service: ServiceThread) -> None:
    """With a bucket in the Host, `/-/healthz` is that bucket's object (here: anonymous
    access to a private bucket, refused in the OSS dialect), not the probe."""
    request = urllib.request.Request(
        service.endpoint + "/-/healthz", headers={"Host": "live.127.0.0.1"}
    )
    try:
        urllib.request.urlopen(request, timeout=10)
        raise AssertionError("expected an OSS error")
    except urllib.error.HTTPError as e:
        assert e.code == 403 and b"<Code>AccessDenied</Code>" in e.read()
