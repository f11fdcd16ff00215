from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from samples.make_sample import SampleSpec, make_sample
from tests.support.moto import MotoServer
from tests.support.service import ServiceThread


@pytest.fixture
def service(tmp_path: Path) -> Iterator[ServiceThread]:
    with ServiceThread(tmp_path / "data").start() as svc:
        yield svc


@pytest.fixture(params=["local", "s3"])
def any_service(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ServiceThread]:
    """The service with its bucket on the local filesystem, then on S3 (moto)."""
    storage = None
    if request.param == "s3":
        server: MotoServer = request.getfixturevalue("moto")
        storage = server.storage_table(server.new_bucket())
    with ServiceThread(tmp_path / "data", storage=storage).start() as svc:
        yield svc


@pytest.fixture(scope="session")
def sample_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("samples")


@pytest.fixture(scope="session")
def sample_flv(sample_dir: Path) -> Path:
    """14 s, 640x360 30 fps, 2 s GOP with B-frames, AAC 44.1 kHz stereo."""
    return make_sample(sample_dir / "base.flv", SampleSpec(duration_s=14, width=640, height=360))
