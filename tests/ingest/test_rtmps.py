"""RTMPS: ffmpeg publishes over rtmps:// (TLS 1.2+, a certificate the test makes with the
openssl CLI) and the stream plays; SIGHUP re-reads the certificate without dropping the
publisher that is on the air, and a broken pair is refused while the old one stays."""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import time
from dataclasses import replace
from pathlib import Path

import pytest

from livechannel.config import ConfigError, Listen, load
from livechannel.store.base import Acl
from samples.make_sample import SampleSpec, make_sample
from tests.robustness.serve_process import BUCKET, ServeProcess, free_port
from tests.support import publishers
from tests.support.service import ServiceThread, create_channel

PUBLISH_TIMEOUT_S = 60


def make_certificate(directory: Path, name: str) -> tuple[Path, Path]:
    """A self-signed P-256 certificate for 127.0.0.1 whose CN is `name`."""
    cert, key = directory / f"{name}.crt", directory / f"{name}.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-days", "1", "-subj", f"/CN={name}", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=30,
    )  # fmt: skip
    return cert, key


def served_certificate(port: int) -> tuple[bytes, str]:
    """(the DER certificate the listener serves, the negotiated TLS version). Not verified:
    the test compares it with the files it wrote."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
        assert der is not None
        return der, str(tls.version())


def der(cert: Path) -> bytes:
    return ssl.PEM_cert_to_DER_cert(cert.read_text())


def play(url: str) -> subprocess.CompletedProcess[str]:
    cmd = ["ffmpeg", "-hide_banner", "-v", "error", "-nostdin", "-i", url, "-f", "null", "-"]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=PUBLISH_TIMEOUT_S)


def test_ffmpeg_publishes_over_rtmps_and_it_plays(tmp_path: Path) -> None:
    cert, key = make_certificate(tmp_path, "first")
    sample_flv = make_sample(tmp_path / "s.flv", SampleSpec(duration_s=6, width=320, height=240))
    service = ServiceThread(tmp_path / "data", acl=Acl.PUBLIC_READ)
    service.config = replace(service.config, rtmps_listen=Listen("127.0.0.1", 0),
                             tls_cert=str(cert), tls_key=str(key))  # fmt: skip
    with service.start() as svc:
        running = svc.running
        assert running is not None and running.rtmps_port
        assert served_certificate(running.rtmps_port) == (der(cert), "TLSv1.3")
        assert running.tls is not None
        assert running.tls.context.minimum_version == ssl.TLSVersion.TLSv1_2
        create_channel(svc.bucket(), "cam", frag_duration=2)
        rtmp_url = svc.signed_publish_url("cam", rtmp_port=True)
        url = rtmp_url.replace(
            f"rtmp://127.0.0.1:{svc.rtmp_port}/", f"rtmps://127.0.0.1:{running.rtmps_port}/"
        )
        # The URL we print and sign is the same one (signatures do not cover the scheme).
        signed = running.urls.publish_url(BUCKET, "cam", tls=True)
        assert signed == f"rtmps://127.0.0.1:{running.rtmps_port}/{BUCKET}/live/cam"
        r = publishers.run(publishers.ffmpeg_copy(sample_flv, url, realtime=False),
                           timeout_s=PUBLISH_TIMEOUT_S)  # fmt: skip
        assert r.returncode == 0, r.stderr
        svc.wait_idle("cam")
        result = play(f"{svc.endpoint}/{BUCKET}/cam/playlist.m3u8")
        assert result.returncode == 0 and result.stderr.strip() == "", result.stderr
        assert len(svc.call(svc.store.last_segments(BUCKET, "cam", 100))) == 3  # 6 s, 2 s GOP


def test_rtmps_needs_a_certificate() -> None:
    with pytest.raises(ConfigError, match="tls_cert and tls_key"):
        load(None, {"LIVECHANNEL_RTMPS_LISTEN": "127.0.0.1:0"}, {})


def test_sighup_reloads_the_certificate_without_dropping_the_publisher(tmp_path: Path) -> None:
    cert, key = make_certificate(tmp_path, "before")
    before = der(cert)
    rtmps_port = free_port()
    serve = ServeProcess(tmp_path / "data", args=[
        "--rtmps-listen", f"127.0.0.1:{rtmps_port}", "--tls-cert", str(cert), "--tls-key", str(key),
    ])  # fmt: skip
    serve.start()
    pub = None
    try:
        assert served_certificate(rtmps_port)[0] == before
        create_channel(serve.bucket(), "cam", frag_duration=1)
        url = serve.signed_publish_url("cam").replace(
            f"rtmp://127.0.0.1:{serve.rtmp_port}/", f"rtmps://127.0.0.1:{rtmps_port}/"
        )
        pub = publishers.start(publishers.ffmpeg_live(url, duration_s=8, gop_s=1, audio=False))
        deadline = time.monotonic() + 20
        while not list(serve.object_path("cam").glob("*.ts")):
            assert time.monotonic() < deadline, serve.log()
            time.sleep(0.1)
        # A broken pair (the new key with the old certificate) is refused; the old one stays.
        new_cert, new_key = make_certificate(tmp_path, "after")
        os.replace(new_key, key)
        os.kill(serve.pid, signal.SIGHUP)
        deadline = time.monotonic() + 10
        while "TLS reload refused" not in serve.log():
            assert time.monotonic() < deadline, serve.log()
            time.sleep(0.05)
        assert served_certificate(rtmps_port)[0] == before
        after = der(new_cert)
        os.replace(new_cert, cert)
        reloaded_at = time.time()
        os.kill(serve.pid, signal.SIGHUP)
        deadline = time.monotonic() + 10
        while served_certificate(rtmps_port)[0] != after:
            assert time.monotonic() < deadline, serve.log()
            time.sleep(0.05)
        _, err = pub.communicate(timeout=30)  # ffmpeg finishes its 8 s on its own
        assert pub.returncode == 0 and "error" not in err.lower(), err
        pub = None
        history = serve.bucket().get_live_channel_history("cam").records
        assert len(history) == 1  # one push from start to end: never dropped
        names = sorted(p.name for p in serve.object_path("cam").glob("*.ts"))
        assert any(int(n[:-3]) > reloaded_at * 1000 for n in names)  # it went on after
    finally:
        if pub is not None:
            publishers.stop(pub)
        serve.terminate(30)
