"""`livechannel serve`: load the config once, print what a newcomer needs, run the service;
`livechannel channel ...` and `livechannel url ...`: the admin commands (livechannel.admin)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import multiprocessing
import multiprocessing.connection
import os
import shlex
import signal
import sqlite3
import sys
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

from livechannel import __version__
from livechannel.admin import commands
from livechannel.config import (
    CREDENTIALS_FILE,
    WILDCARD_HOSTS,
    Config,
    ConfigError,
    ensure_credentials,
    load,
)
from livechannel.errors import StorageError
from livechannel.fleet.node import NodeIdentity, NodeIdError
from livechannel.ops import logs, sdnotify
from livechannel.store.base import Acl
from livechannel.store.sqlite_connection import connect

if TYPE_CHECKING:
    from livechannel.server import Running

# The service's own modules (livechannel.server, livechannel.firstrun, the stores) are imported
# where `serve` needs them: the admin commands then start without their imports (~1 s).

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>: the signal a process gets when its parent dies

Intro = Callable[["Running"], str]  # the banner, given what the started service bound
Ready = Callable[["Running"], None]  # told when a worker serves


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="livechannel", description=__doc__)
    p.add_argument("--version", action="version", version=__version__)
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve", help="run the RTMP ingest and the HTTP API")
    s.add_argument("--config", help="TOML config file")
    s.add_argument("--data-dir", help="where objects, metadata and keys live (default ./data)")
    s.add_argument("--rtmp-listen", help="HOST:PORT for RTMP (default 0.0.0.0:1935)")
    s.add_argument(
        "--http-listen", help="HOST:PORT for the API, also accepts RTMP (default 0.0.0.0:8080)"
    )
    s.add_argument("--rtmps-listen", help="HOST:PORT for RTMPS, RTMP in TLS (default: off)")
    s.add_argument("--tls-cert", help="PEM certificate (chain) for RTMPS; re-read on SIGHUP")
    s.add_argument("--tls-key", help="PEM private key for RTMPS; re-read on SIGHUP")
    s.add_argument("--domain", help="host name clients use, for URLs (default 127.0.0.1)")
    s.add_argument("--bucket", help="name of the default bucket (default live)")
    s.add_argument("--bucket-acl", choices=[a.value for a in Acl], help="ACL of the default bucket")
    s.add_argument("--workers", type=int, help="ingest processes (default 1)")
    s.add_argument(
        "--node-id", help="this node's name in push records (default: kept in <data-dir>/node-id)"
    )
    s.add_argument(
        "--advertise-url",
        help="http(s)://HOST[:PORT] where players reach this node: other nodes redirect LL-HLS "
        "players of its pushes here (default: none)",
    )
    s.add_argument("--region", help="region V4 signatures are scoped to (default cn-hangzhou)")
    s.add_argument(
        "--store",
        help="metadata store URL: sqlite:///PATH (default: livechannel.db in the data dir) or "
        "postgresql://USER:PASS@HOST:PORT/DB (shared by several nodes)",
    )
    s.add_argument(
        "--proxy-protocol",
        nargs="?",
        const="all",
        metavar="LISTENERS",
        help="connections come through a load balancer sending the PROXY protocol (v1/v2): "
        "take client addresses from it, on both listeners or those named (rtmp,http)",
    )
    s.add_argument("--log-level", help="DEBUG, INFO, WARNING")
    s.add_argument(
        "--metrics-listen",
        help="HOST:PORT serving GET /-/metrics alone (default: /-/metrics on the HTTP port)",
    )
    s.add_argument(
        "--log-format", choices=["text", "json"], help="text (default) or json, one object a line"
    )
    s.add_argument(
        "--demo-channel",
        help="channel created at start for the printed commands (default demo; '' for none)",
    )
    s.add_argument(
        "--show-urls",
        action="store_true",
        help="print the demo channel's signed URLs even when stdout is not a terminal",
    )
    commands.add_parsers(sub)
    return p


def config_flags(args: argparse.Namespace) -> dict[str, object]:
    """`serve`'s options as the flags layer of the configuration (None = not given)."""
    return {
        "data_dir": args.data_dir,
        "rtmp_listen": args.rtmp_listen,
        "http_listen": args.http_listen,
        "rtmps_listen": args.rtmps_listen,
        "tls_cert": args.tls_cert,
        "tls_key": args.tls_key,
        "domain": args.domain,
        "bucket": args.bucket,
        "bucket_acl": args.bucket_acl,
        "workers": args.workers,
        "node_id": args.node_id,
        "advertise_url": args.advertise_url,
        "region": args.region,
        "store": args.store,
        "proxy_protocol": args.proxy_protocol,
        "log_level": args.log_level,
        "log_format": args.log_format,
        "demo_channel": args.demo_channel,
        "metrics_listen": args.metrics_listen,
    }


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.command != "serve":
        return _admin(args)
    from livechannel.firstrun import banner, with_reachable_domain

    flags = config_flags(args)
    try:
        loaded = with_reachable_domain(load(args.config, os.environ, flags))
        cfg = ensure_credentials(loaded)
        # Once, before any worker starts: every worker signs its pushes with the same node id.
        cfg = replace(cfg, node_id=NodeIdentity.load(cfg.data_dir, cfg.node_id))
    except (ConfigError, NodeIdError, OSError) as e:
        print(f"livechannel: {e}", file=sys.stderr)
        return 2
    logs.configure(cfg.log_level, cfg.log_format)
    show_urls = args.show_urls or sys.stdout.isatty()
    secret_at, hint = _secret_at(args, loaded), _admin_hint(args, cfg)

    def intro(running: Running) -> str:
        return banner(cfg, running, show_urls=show_urls, secret_at=secret_at,
                      admin_hint=hint(running))  # fmt: skip

    if cfg.workers == 1:
        _run_worker(cfg, 0, intro, _tell_systemd_ready)
        return 0
    metrics_port = cfg.metrics_listen.port if cfg.metrics_listen is not None else None
    if cfg.rtmp_listen.port == 0 or cfg.http_listen.port == 0 or metrics_port == 0:
        print("livechannel: --workers > 1 needs fixed ports (not 0)", file=sys.stderr)
        return 2
    return _supervise(cfg, intro)


def _secret_at(args: argparse.Namespace, loaded: Config) -> str:
    if os.environ.get("LIVECHANNEL_ACCESS_KEY_SECRET"):
        return "the environment, LIVECHANNEL_ACCESS_KEY_SECRET"
    if loaded.access_keys:
        return f"the config file {args.config}"
    return str((loaded.data_dir / CREDENTIALS_FILE).resolve())


def _admin_hint(args: argparse.Namespace, cfg: Config) -> Callable[[Running], str]:
    """The options `livechannel url`/`channel` need to find what this `serve` was told."""
    hint = ""
    if args.config:
        hint += f" --config {shlex.quote(args.config)}"
    if args.data_dir:
        hint += f" --data-dir {shlex.quote(args.data_dir)}"
    if args.bucket:
        hint += f" --bucket {shlex.quote(args.bucket)}"
    if not args.http_listen:
        return lambda running: hint
    host = cfg.http_listen.host
    host = "127.0.0.1" if host in WILDCARD_HOSTS else host
    host = f"[{host}]" if ":" in host else host
    return lambda running: f"{hint} --endpoint http://{host}:{running.http_port}"


def _admin(args: argparse.Namespace) -> int:
    """`channel ...` and `url ...`: find the running service's endpoint and key as `serve`
    does, without creating a key (a new one would be unknown to the service)."""
    try:
        cfg = load(args.config, os.environ, {"data_dir": args.data_dir})
        if not cfg.access_keys and not (cfg.data_dir / CREDENTIALS_FILE).exists():
            raise ConfigError(
                f"no access key: none configured, and no {cfg.data_dir / CREDENTIALS_FILE} "
                "(give the --config/--data-dir the service runs with)"
            )
        cfg = ensure_credentials(cfg)
    except ConfigError as e:
        print(f"livechannel: {e}", file=sys.stderr)
        return 2
    return commands.run(cfg, args)


def _die_with_parent(supervisor_pid: int) -> None:
    """A worker gets SIGTERM when the supervisor dies, even by SIGKILL: no orphan keeps the
    ports, half a service running behind a process manager that restarts the supervisor."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    # The supervisor died before prctl: nobody will signal us. (Not "parent is pid 1": in a
    # container the supervisor itself may be pid 1.)
    if os.getppid() != supervisor_pid:
        os._exit(1)


def _tell_systemd_ready(running: Running) -> None:
    """systemd (Type=notify): serving now, both ports bound, the store open."""
    sdnotify.notify(f"READY=1\nSTATUS=serving RTMP on port {running.rtmp_port}, HTTP on port "
                    f"{running.http_port}")  # fmt: skip


def _forked_worker(
    cfg: Config, index: int, supervisor_pid: int, intro: Intro, ready_fd: int
) -> None:
    _die_with_parent(supervisor_pid)

    def serving(_running: Running) -> None:
        os.write(ready_fd, b"r")  # the supervisor tells systemd once every worker did

    _run_worker(cfg, index, intro, serving)


def _run_worker(cfg: Config, index: int, intro: Intro, on_ready: Ready) -> None:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - optional on platforms without uvloop
        run = asyncio.run
    else:
        run = uvloop.run
    run(_serve(cfg, index, intro, on_ready))


def _supervise(cfg: Config, intro: Intro) -> int:
    """N worker processes share both ports (SO_REUSEPORT: the kernel spreads connections)
    and one metadata store, which keeps one-publisher and kicks right across them."""
    # Create (or migrate) the store once, before the workers race to: two processes switching
    # a new database to WAL at once get SQLITE_BUSY, and a worker died of it at start.
    # (PostgreSQL needs none of this: its migration runs under an advisory lock.)
    try:
        cfg.data_dir.mkdir(parents=True, exist_ok=True)
        from livechannel.store.factory import sqlite_path

        path = sqlite_path(cfg.store, cfg.data_dir)
        if path is not None:
            connect(str(path)).close()
    except (OSError, sqlite3.Error, StorageError) as e:
        print(f"livechannel: {e}", file=sys.stderr)
        return 1
    ctx = multiprocessing.get_context("fork")
    # Each worker writes one byte here once it serves; with all of them, the service does.
    ready_r, ready_w = os.pipe()
    workers = [
        ctx.Process(
            target=_forked_worker, args=(cfg, i, os.getpid(), intro, ready_w), name=f"worker-{i}"
        )
        for i in range(cfg.workers)
    ]
    for w in workers:
        w.start()
    os.close(ready_w)

    stopping = False
    workers_ready = 0

    def forward(signum: int, _frame: object) -> None:
        nonlocal stopping
        if not stopping:
            sdnotify.notify("STOPPING=1")  # systemd (Type=notify): the stop has begun
        stopping = True
        for w in workers:
            if w.pid is not None and w.is_alive():
                os.kill(w.pid, signum)

    def pass_on(signum: int, _frame: object) -> None:
        for w in workers:
            if w.pid is not None and w.is_alive():
                os.kill(w.pid, signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGHUP, pass_on)  # each worker re-reads the RTMPS certificate
    running = {w.sentinel: w for w in workers}
    while running:
        waiting = [*running, ready_r] if workers_ready < cfg.workers else list(running)
        for sentinel in multiprocessing.connection.wait(waiting):
            if sentinel == ready_r:
                got = os.read(ready_r, cfg.workers)
                if not got:  # end of file: every worker has exited; stop watching the pipe
                    workers_ready = cfg.workers
                    continue
                workers_ready += len(got)
                if workers_ready >= cfg.workers and not stopping:
                    sdnotify.notify(f"READY=1\nSTATUS=serving with {cfg.workers} workers: RTMP "
                                    f"on port {cfg.rtmp_listen.port}, HTTP on port "
                                    f"{cfg.http_listen.port}")  # fmt: skip
                continue
            worker = running.pop(sentinel)  # type: ignore[arg-type]
            worker.join()
            if not stopping:
                # One worker gone means a part of the connections and API requests failing
                # while the service looks up: stop it all, so that whatever supervises us
                # (systemd, a container runtime) sees the failure and restarts the service.
                print(f"livechannel: {worker.name} exited with code {worker.exitcode}; "
                      "stopping the other workers", file=sys.stderr, flush=True)  # fmt: skip
                forward(signal.SIGTERM, None)
    return max(abs(w.exitcode or 0) for w in workers)


async def _serve(cfg: Config, index: int, intro: Intro, on_ready: Ready) -> None:
    from livechannel.server import serve

    shutdown = asyncio.Event()
    loop = asyncio.get_running_loop()

    def stop() -> None:
        if cfg.workers == 1 and not shutdown.is_set():
            sdnotify.notify("STOPPING=1")  # systemd (Type=notify); with --workers: the supervisor
        shutdown.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop)
    reload_tls = asyncio.Event()
    loop.add_signal_handler(signal.SIGHUP, reload_tls.set)

    def ready(running: Running) -> None:
        if index == 0:
            print(intro(running), flush=True)
        on_ready(running)

    await serve(cfg, shutdown, ready, worker_index=index, reload_tls=reload_tls)
