"""One node behind a real HAProxy sending the PROXY protocol (v1 to the RTMP port, v2 to the
HTTP port), HAProxy connecting from 127.0.0.2: the push record, Stat's RemoteAddr and the
history name the client (127.0.0.1), not the balancer; the API works through it."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import oss2
import pytest

from tests.support import haproxy, publishers
from tests.support.postgres import free_port
from tests.support.service import (
    ACCESS_KEY_ID,
    ACCESS_KEY_SECRET,
    BUCKET,
    ServiceThread,
    create_channel,
)


@pytest.mark.skipif(not haproxy.available(), reason="HAProxy not installed (scripts/test.sh)")
def test_publish_and_api_through_haproxy(tmp_path: Path) -> None:
    with ServiceThread(tmp_path / "data", proxy_protocol=frozenset({"rtmp", "http"})) as svc:
        svc.start()
        rtmp_port, http_port = free_port(), free_port()
        node = haproxy.Backend("node1", "127.0.0.1", svc.rtmp_port, svc.http_port)
        config = haproxy.render(
            ("127.0.0.1", rtmp_port), ("127.0.0.1", http_port), [node], source="127.0.0.2"
        )
        balancer = haproxy.HAProxy(config, (rtmp_port, http_port)).start()
        try:
            balancer.wait_serving(http_port)
            auth = oss2.Auth(ACCESS_KEY_ID, ACCESS_KEY_SECRET)  # the API through HAProxy
            bucket = oss2.Bucket(auth, f"http://127.0.0.1:{http_port}", BUCKET)
            create_channel(bucket, "cam", frag_duration=1)
            url = svc.signed_publish_url("cam", rtmp_port=True).replace(
                f":{svc.rtmp_port}/", f":{rtmp_port}/"
            )
            pub = publishers.start(publishers.ffmpeg_live(url, duration_s=30))
            try:
                deadline = time.monotonic() + 15
                while (push := svc.call(svc.store.live_push(BUCKET, "cam"))) is None:
                    assert time.monotonic() < deadline, balancer.log_tail()
                    time.sleep(0.05)
                assert push.remote_addr.startswith("127.0.0.1:"), push.remote_addr
                stat = bucket.get_live_channel_stat("cam")
                assert stat.status == "Live" and stat.remote_addr.startswith("127.0.0.1:")
            finally:
                publishers.stop(pub)
            svc.wait_idle("cam")
            (record,) = bucket.get_live_channel_history("cam").records
            assert record.remote_addr.startswith("127.0.0.1:")
        finally:
            balancer.stop()


@pytest.mark.skipif(not haproxy.available(), reason="HAProxy not installed (scripts/test.sh)")
def test_the_documented_config_is_valid() -> None:
    config = Path(__file__).resolve().parents[2] / "deploy" / "haproxy" / "haproxy.cfg"
    check = subprocess.run(
        [haproxy.HAPROXY, "-c", "-f", str(config)], capture_output=True, text=True, timeout=30
    )
    assert check.returncode == 0, check.stdout + check.stderr
