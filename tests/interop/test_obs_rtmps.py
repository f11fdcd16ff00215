"""OBS Studio 29 (its librtmp with mbedTLS, which reads the certificates it trusts from
/etc/ssl/certs) publishes over RTMPS to a certificate the test makes, and what it sent plays.
OBS runs in a mount namespace where only that certificate is trusted (root needed)."""

from __future__ import annotations

import os
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from livechannel.config import Listen
from tests.support.obs_studio import stream_with_obs
from tests.support.output import Cuts, check_output
from tests.support.service import BUCKET, ServiceThread, create_channel

pytestmark = pytest.mark.slow

STREAM_S = 10
FRAG_DURATION_S = 2


def certificate_for_obs(directory: Path) -> tuple[Path, Path]:
    """mbedTLS 2.28 matches a host that is an IP against the CN and DNS names only."""
    directory.mkdir(parents=True)
    cert, key = directory / "server.pem", directory.parent / "server.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=DNS:127.0.0.1,IP:127.0.0.1",
         "-addext", "basicConstraints=critical,CA:TRUE",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=30,
    )  # fmt: skip
    return cert, key


@pytest.mark.skipif(os.geteuid() != 0, reason="OBS's trust store is swapped in a mount namespace")
def test_obs_publishes_over_rtmps(tmp_path: Path) -> None:
    cert, key = certificate_for_obs(tmp_path / "trusted")
    service = ServiceThread(tmp_path / "data")
    service.config = replace(service.config, rtmps_listen=Listen("127.0.0.1", 0),
                             tls_cert=str(cert), tls_key=str(key))  # fmt: skip
    with service.start() as svc:
        assert svc.running is not None and svc.running.rtmps_port
        create_channel(svc.bucket(), "obs", frag_duration=FRAG_DURATION_S, frag_count=3)
        url = svc.signed_publish_url("obs", rtmp_port=True).replace(
            f"rtmp://127.0.0.1:{svc.rtmp_port}/", f"rtmps://127.0.0.1:{svc.running.rtmps_port}/"
        )
        stream_with_obs(svc, "obs", url, tmp_path / "obs", STREAM_S, trusted_certs=cert.parent)
        svc.wait_idle("obs")
        stored = len(svc.call(svc.store.segments_between(BUCKET, "obs", 0, 2**62)))
        # OBS keeps its default keyframe interval for a Custom server (250 frames): segments
        # follow it, as over plain RTMP (test_obs.py).
        check_output(svc, "obs", window=min(3, stored), cuts=Cuts(FRAG_DURATION_S, 250 / 30),
                     min_segments=2, require_audio=True, ffmpeg_decode=True)  # fmt: skip
