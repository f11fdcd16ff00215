"""Fixtures every test package may use. Helpers (functions, classes) live in tests/support/;
test modules import from there, never from a conftest or from another test module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support import postgres as pg
from tests.support.moto import MotoServer, start_moto


@pytest.fixture(scope="session")
def moto() -> Iterator[MotoServer]:
    """moto's S3 server (subprocess, port 0), for tests that run on both storage backends."""
    server = start_moto()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def postgres() -> Iterator[pg.PostgresServer]:
    """One PostgreSQL server for the session (initdb in a temporary directory, unix socket
    only); tests take a fresh database each with `postgres.new_database()`. Stopped by its
    PID at the end of the session."""
    if not pg.available():
        pytest.skip(f"PostgreSQL is not in {pg.PG_BIN} (bash scripts/test.sh installs it)")
    server = pg.start_postgres()
    try:
        yield server
    finally:
        server.destroy()
