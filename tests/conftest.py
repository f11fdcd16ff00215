"""Fixtures every test package may use. Helpers (functions, classes) live in tests/support/;
test modules import from there, never from a conftest or from another test module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.moto import MotoServer, start_moto


@pytest.fixture(scope="session")
def moto() -> Iterator[MotoServer]:
    """moto's S3 server (subprocess, port 0), for tests that run on both storage backends."""
    server = start_moto()
    try:
        yield server
    finally:
        server.stop()
