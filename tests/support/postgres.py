"""A throwaway PostgreSQL server from Debian's `postgresql` package, started by the tests.

`initdb` in a fresh temporary directory, then the `postgres` binary itself as a child process
(so its PID is the postmaster's: it is stopped by that PID, with a fast shutdown). PostgreSQL
refuses to run as root, so under root the server runs as `nobody` and owns its directory.
It listens on a unix socket in its directory and, when asked, on TCP addresses (the
multi-node test gives it the bridge address its nodes reach it by). Authentication is
`trust`: nothing but the test can reach it.
"""

from __future__ import annotations

import itertools
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path


def _pg_bin() -> Path:
    """Debian's PostgreSQL binaries (the newest installed major version)."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
    return found[-1].parent if found else Path("/usr/lib/postgresql/15/bin")


PG_BIN = _pg_bin()
START_TIMEOUT_S = 30.0  # initdb + first start on a busy two-core box take a few seconds
STOP_TIMEOUT_S = 15.0
SUPERUSER = "livechannel"
UNPRIVILEGED_USER = "nobody"  # what the server runs as when the tests run as root
_databases = itertools.count()


def available() -> bool:
    return (PG_BIN / "initdb").exists() and (PG_BIN / "postgres").exists()


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@dataclass
class PostgresServer:
    root: Path  # holds data/ and the unix socket
    port: int
    listen: tuple[str, ...]  # TCP addresses, besides the unix socket
    settings: tuple[str, ...] = ()  # extra "name=value" server settings
    process: subprocess.Popen[bytes] | None = None
    databases: list[str] = field(default_factory=list)

    @property
    def socket_dir(self) -> Path:
        return self.root

    def url(self, database: str = "postgres", host: str | None = None) -> str:
        """A libpq URL: over TCP to `host`, or else over the unix socket."""
        if host is not None:
            return f"postgresql://{SUPERUSER}@{host}:{self.port}/{database}"
        return f"postgresql://{SUPERUSER}@/{database}?host={self.socket_dir}&port={self.port}"

    def psql(self, sql: str, database: str = "postgres") -> str:
        out = subprocess.run(
            [str(PG_BIN / "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
             "-h", str(self.socket_dir), "-p", str(self.port), "-U", SUPERUSER,
             "-d", database, "-c", sql],
            capture_output=True, text=True, timeout=30, check=True,
        )  # fmt: skip
        return out.stdout

    def new_database(self) -> str:
        """A fresh empty database (created from template0: no copy of another test's data)."""
        name = f"lc_{os.getpid()}_{next(_databases)}"
        self.psql(f"CREATE DATABASE {name} TEMPLATE template0")
        self.databases.append(name)
        return name

    def start(self) -> None:
        """Start (or restart, after `stop`) the server on the same directory and port."""
        assert self.process is None or self.process.poll() is not None
        cmd = [
            str(PG_BIN / "postgres"), "-D", str(self.root / "data"), "-p", str(self.port),
            "-k", str(self.socket_dir), "-c", f"listen_addresses={','.join(self.listen)}",
            "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
            "-c", "max_connections=200", "-c", "shared_buffers=64MB",
        ]  # fmt: skip
        for setting in self.settings:
            cmd += ["-c", setting]
        log = open(self.root / "server.log", "ab")  # noqa: SIM115 - the child holds it
        self.process = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            **_as_user(),
        )  # fmt: skip
        log.close()
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"postgres exited at start:\n{self.log_tail()}")
            ready = subprocess.run(
                [str(PG_BIN / "pg_isready"), "-q", "-h", str(self.socket_dir),
                 "-p", str(self.port), "-U", SUPERUSER],
                timeout=10,
            )  # fmt: skip
            if ready.returncode == 0:
                return
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"postgres did not become ready:\n{self.log_tail()}")

    def stop(self) -> None:
        """Fast shutdown by PID (SIGINT: roll back sessions, checkpoint, exit)."""
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGINT)
        try:
            process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()  # immediate shutdown; the directory is thrown away anyway
            process.wait(STOP_TIMEOUT_S)

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = (self.root / "server.log").read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


def _as_user() -> dict[str, object]:
    """Popen arguments that drop root for `nobody` (PostgreSQL refuses to run as root)."""
    if os.geteuid() != 0:
        return {}
    user = pwd.getpwnam(UNPRIVILEGED_USER)
    return {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}


def start_postgres(
    listen: tuple[str, ...] = (), port: int | None = None, settings: tuple[str, ...] = ()
) -> PostgresServer:
    """initdb a new cluster in a temporary directory and start it."""
    root = Path(tempfile.mkdtemp(prefix="lc-pg-"))
    if os.geteuid() == 0:
        user = pwd.getpwnam(UNPRIVILEGED_USER)
        os.chown(root, user.pw_uid, user.pw_gid)
    server = PostgresServer(root=root, port=port or free_port(), listen=listen, settings=settings)
    try:
        subprocess.run(
            [str(PG_BIN / "initdb"), "-D", str(root / "data"), "-U", SUPERUSER,
             "--auth=trust", "--encoding=UTF8", "--locale=C.UTF-8", "--no-sync"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=True, timeout=120,
            **_as_user(),  # type: ignore[call-overload]
        )  # fmt: skip
        if listen:
            with open(root / "data" / "pg_hba.conf", "a") as hba:
                hba.write("host all all 0.0.0.0/0 trust\n")  # the test's own bridge only
        server.start()
    except BaseException:
        server.destroy()
        raise
    return server
