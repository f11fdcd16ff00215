from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from samples.make_sample import SampleSpec, make_sample
from tests.e2e.conftest import create_channel
from tests.robustness.rtmp_session import RtmpSession
from tests.support.service import ServiceThread

__all__ = ["create_channel", "session_for"]


@pytest.fixture(scope="session")
def short_flv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """6 s, 320x180 30 fps, 1 s GOP without B-frames, AAC: small and quick to send."""
    out = tmp_path_factory.mktemp("robust-samples") / "short.flv"
    return make_sample(out, SampleSpec(duration_s=6, width=320, height=180, gop_s=1, bframes=0))


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Everything the service logs at DEBUG and up (the service thread logs globally)."""
    caplog.set_level(logging.DEBUG)
    yield caplog


def url_parts(url: str) -> tuple[int, str, str, str]:
    """(port, app, stream name with query, tcUrl) of an RTMP URL, split as libavformat does."""
    parts = urlsplit(url)
    app, _, stream = parts.path.lstrip("/").rpartition("/")
    if parts.query:
        stream += "?" + parts.query
    assert parts.port is not None
    return parts.port, app, stream, f"rtmp://{parts.netloc}/{app}"


def session_for(svc: ServiceThread, channel: str, **kw: object) -> RtmpSession:
    """A session that will publish `channel` with oss2's signed URL (the RTMP port)."""
    port, app, stream, tc_url = url_parts(svc.signed_publish_url(channel, rtmp_port=True))
    return RtmpSession(port, app, stream, tc_url=tc_url, **kw)  # type: ignore[arg-type]
