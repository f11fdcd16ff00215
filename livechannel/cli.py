"""`livechannel serve`: load the config once, print what a newcomer needs, run the service."""

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
import time
from dataclasses import replace

from livechannel import __version__
from livechannel.auth import urls
from livechannel.config import Config, ConfigError, ensure_credentials, load
from livechannel.errors import StorageError
from livechannel.fleet.node import NodeIdentity, NodeIdError
from livechannel.ops import logs
from livechannel.server import Running, serve
from livechannel.store.base import Acl
from livechannel.store.factory import sqlite_path
from livechannel.store.sqlite_connection import connect

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>: the signal a process gets when its parent dies
BANNER_URL_LIFETIME_S = 7 * 24 * 3600  # the printed publish URL stays valid for a week


def signed_publish_url(cfg: Config, running: Running, channel: str, expires_s: int) -> str:
    bucket = cfg.buckets[0]
    if bucket.acl == Acl.PUBLIC_READ_WRITE:
        return running.urls.publish_url(bucket.name, channel)
    key_id, secret = next(iter(cfg.access_keys.items()))
    return urls.signed_publish_url(running.urls, bucket.name, channel, key_id, secret, expires_s)


def signed_play_url(cfg: Config, running: Running, channel: str, expires_s: int) -> str:
    """A play URL any HLS player can use: for a private bucket, signed with
    `x-oss-process=hls/sign` so the segment URIs in the playlist come back signed too."""
    bucket = cfg.buckets[0]
    url = running.urls.play_url(bucket.name, channel, "playlist.m3u8")
    if bucket.acl != Acl.PRIVATE:
        return url
    key_id, secret = next(iter(cfg.access_keys.items()))
    key = f"{channel}/playlist.m3u8"
    return (
        f"{url}?{urls.signed_object_query(bucket.name, key, key_id, secret, expires_s, 'hls/sign')}"
    )


def banner(cfg: Config, running: Running) -> str:
    bucket = cfg.buckets[0]
    channel = cfg.demo_channel
    expires = int(time.time()) + BANNER_URL_LIFETIME_S
    url = signed_publish_url(cfg, running, channel, expires)
    server_part, _, key_part = url.rpartition("/")
    play = signed_play_url(cfg, running, channel, expires)
    key_id = next(iter(cfg.access_keys))
    sample = "samples/sample.flv"
    lines = [
        f"livechannel {__version__} is running",
        f"  bucket      {bucket.name} (ACL {bucket.acl.value})",
        f"  API         http://{cfg.domain}:{running.http_port}  (OSS dialect; oss2 works)",
        f"  console     http://{cfg.domain}:{running.http_port}/-/console/  (sign in with the"
        " access key)",
        f"  access key  {key_id}  (secret in {cfg.data_dir / 'credentials.json'}"
        " unless set by config/env)",
        "",
        f"Push a test stream to channel '{channel}' (URL valid for 7 days):",
        f"  ffmpeg -re -f lavfi -i testsrc2=size=1280x720:rate=30 -f lavfi -i sine=frequency=440 "
        f"-c:v libx264 -g 60 -c:a aac -f flv {shlex.quote(url)}",
        f"  (or: python samples/make_sample.py && ffmpeg -re -i {sample} -c copy -f flv "
        f"{shlex.quote(url)})",
        "OBS: Settings → Stream → Service 'Custom…'",
        f"  Server      {server_part}",
        f"  Stream Key  {key_part}",
        "Play (HLS)" + (", signed for 7 days:" if bucket.acl == Acl.PRIVATE else ":"),
        f"  ffplay {shlex.quote(play)}",
    ]
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
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
    s.add_argument("--domain", help="host name clients use, for URLs (default 127.0.0.1)")
    s.add_argument("--bucket", help="name of the default bucket (default live)")
    s.add_argument("--bucket-acl", choices=[a.value for a in Acl], help="ACL of the default bucket")
    s.add_argument("--workers", type=int, help="ingest processes (default 1)")
    s.add_argument(
        "--node-id", help="this node's name in push records (default: kept in <data-dir>/node-id)"
    )
    s.add_argument("--region", help="region V4 signatures are scoped to (default cn-hangzhou)")
    s.add_argument(
        "--store",
        help="metadata store URL: sqlite:///PATH (default: livechannel.db in the data dir) or "
        "postgresql://USER:PASS@HOST:PORT/DB (shared by several nodes)",
    )
    s.add_argument("--log-level", help="DEBUG, INFO, WARNING")
    s.add_argument(
        "--log-format", choices=["text", "json"], help="text (default) or json, one object a line"
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    flags = {
        "data_dir": args.data_dir,
        "rtmp_listen": args.rtmp_listen,
        "http_listen": args.http_listen,
        "domain": args.domain,
        "bucket": args.bucket,
        "bucket_acl": args.bucket_acl,
        "workers": args.workers,
        "node_id": args.node_id,
        "region": args.region,
        "store": args.store,
        "log_level": args.log_level,
        "log_format": args.log_format,
    }
    try:
        cfg = ensure_credentials(load(args.config, os.environ, flags))
        # Once, before any worker starts: every worker signs its pushes with the same node id.
        cfg = replace(cfg, node_id=NodeIdentity.load(cfg.data_dir, cfg.node_id))
    except (ConfigError, NodeIdError, OSError) as e:
        print(f"livechannel: {e}", file=sys.stderr)
        return 2
    logs.configure(cfg.log_level, cfg.log_format)
    if cfg.workers == 1:
        _run_worker(cfg, 0)
        return 0
    if cfg.rtmp_listen.port == 0 or cfg.http_listen.port == 0:
        print("livechannel: --workers > 1 needs fixed ports (not 0)", file=sys.stderr)
        return 2
    return _supervise(cfg)


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


def _forked_worker(cfg: Config, index: int, supervisor_pid: int) -> None:
    _die_with_parent(supervisor_pid)
    _run_worker(cfg, index)


def _run_worker(cfg: Config, index: int) -> None:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - optional on platforms without uvloop
        run = asyncio.run
    else:
        run = uvloop.run
    run(_serve(cfg, index))


def _supervise(cfg: Config) -> int:
    """N worker processes share both ports (SO_REUSEPORT: the kernel spreads connections)
    and one metadata store, which keeps one-publisher and kicks right across them."""
    # Create (or migrate) the store once, before the workers race to: two processes switching
    # a new database to WAL at once get SQLITE_BUSY, and a worker died of it at start.
    # (PostgreSQL needs none of this: its migration runs under an advisory lock.)
    try:
        cfg.data_dir.mkdir(parents=True, exist_ok=True)
        path = sqlite_path(cfg.store, cfg.data_dir)
        if path is not None:
            connect(str(path)).close()
    except (OSError, sqlite3.Error, StorageError) as e:
        print(f"livechannel: {e}", file=sys.stderr)
        return 1
    ctx = multiprocessing.get_context("fork")
    workers = [
        ctx.Process(target=_forked_worker, args=(cfg, i, os.getpid()), name=f"worker-{i}")
        for i in range(cfg.workers)
    ]
    for w in workers:
        w.start()

    stopping = False

    def forward(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        for w in workers:
            if w.pid is not None and w.is_alive():
                os.kill(w.pid, signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    running = {w.sentinel: w for w in workers}
    while running:
        for sentinel in multiprocessing.connection.wait(list(running)):
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


async def _serve(cfg: Config, index: int) -> None:
    shutdown = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, shutdown.set)

    def ready(running: Running) -> None:
        if index == 0:
            print(banner(cfg, running), flush=True)

    await serve(cfg, shutdown, ready, worker_index=index)
