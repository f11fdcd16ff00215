from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from samples.make_sample import SampleSpec, make_sample


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
