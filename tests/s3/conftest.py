from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.moto import MotoServer, start_moto


@pytest.fixture(scope="session")
def moto() -> Iterator[MotoServer]:
    server = start_moto()
    try:
        yield server
    finally:
        server.stop()
