from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.service import ServiceThread


@pytest.fixture
def service(tmp_path: Path) -> Iterator[ServiceThread]:
    svc = ServiceThread(tmp_path / "data").start()
    try:
        yield svc
    finally:
        svc.stop()
