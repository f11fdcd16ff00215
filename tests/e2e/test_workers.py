"""`livechannel serve --workers 2`: the rules that go through the metadata store hold across
worker processes.

Both workers accept on the same ports (SO_REUSEPORT: the kernel picks the worker). So that
each test really crosses processes, it finds out from /proc which worker owns the server end
of a TCP connection, and keeps trying fresh connections until it has one on the worker it
wants: an RTMP publish on the worker that does *not* hold the channel's push, an oss2 session
on the worker that does not hold it either. ffmpeg is the live publisher; the second
publisher is our own RTMP client (its socket is ours, so we can steer it).
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import oss2
import pytest

from livechannel.fleet.liveness import STALE_PUSH_MS
from livechannel.fleet.registry import HEARTBEAT_INTERVAL_S
from livechannel.rtmp.client import ClientConnection, PublishStarted, StatusReceived
from livechannel.server import STALE_SWEEP_INTERVAL_S
from tests.support.publishers import ffmpeg_live, run, start, stop
from tests.support.service import create_channel

ROOT = Path(__file__).resolve().parents[2]
KEY_ID, KEY_SECRET = "LTAIworkerstest001", "workers-test-secret-0123456789"
WORKERS = 2
START_TIMEOUT_S = 20.0
STEER_ATTEMPTS = 64  # fresh connections tried to land on one worker (1/2 each: 2**-64 to fail)
KICK_BOUND_S = 2.0  # disable kicks within 1 s (docs/api.md); 2 s leaves room for a loaded machine
IO_TIMEOUT_S = 10.0
# Longer than the stale-push limit plus two sweeps: a sweep by the other worker would have
# ended the paused worker's push.
PAUSE_S = STALE_PUSH_MS / 1000 + 2 * STALE_SWEEP_INTERVAL_S + 1
TCP_LISTEN, TCP_ESTABLISHED = "0A", "01"  # /proc/net/tcp states


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def tcp_table() -> list[tuple[int, int, str, int]]:
    """(local port, remote port, state, inode) of every IPv4 TCP socket (proc(5))."""
    rows = []
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        f = line.split()
        rows.append((int(f[1].split(":")[1], 16), int(f[2].split(":")[1], 16), f[3], int(f[9])))
    return rows


def socket_inodes(pid: int) -> set[int]:
    inodes = set()
    with contextlib.suppress(FileNotFoundError):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith("socket:["):
                    inodes.add(int(target[8:-1]))
    return inodes


def owner(server_port: int, client_port: int, pids: list[int]) -> int | None:
    """The worker holding the server end of the connection from `client_port`."""
    inodes = {i for lp, rp, st, i in tcp_table() if (lp, rp) == (server_port, client_port)}
    return next((pid for pid in pids if socket_inodes(pid) & inodes), None)


@dataclass
class Service:
    proc: subprocess.Popen[bytes]
    data_dir: Path
    rtmp_port: int
    http_port: int
    workers: list[int]

    def bucket(self, session: oss2.Session | None = None) -> oss2.Bucket:
        return oss2.Bucket(oss2.Auth(KEY_ID, KEY_SECRET), f"http://127.0.0.1:{self.http_port}",
                           "live", session=session)  # fmt: skip

    def publish_url(self, channel: str) -> str:
        url = self.bucket().sign_rtmp_url(channel, "playlist.m3u8", 3600)
        return url.replace(f":{self.http_port}/", f":{self.rtmp_port}/", 1)

    def live_push_worker(self, channel: str) -> int | None:
        """pid of the worker owning the channel's running push (push.worker is host:pid)."""
        with contextlib.closing(sqlite3.connect(self.data_dir / "livechannel.db")) as db:
            row = db.execute(
                "SELECT worker FROM pushes WHERE channel = ? AND end_ms IS NULL", (channel,)
            ).fetchone()
        return None if row is None else int(row[0].rsplit(":", 1)[1])

    def session_on(self, pid: int, channel: str) -> oss2.Session:
        """An oss2 session whose kept-alive connection is served by worker `pid`."""
        mine = os.getpid()
        for _ in range(STEER_ATTEMPTS):
            before = socket_inodes(mine)
            session = oss2.Session()
            self.bucket(session).get_live_channel(channel)
            new = socket_inodes(mine) - before
            ports = [lp for lp, rp, st, i in tcp_table()
                     if i in new and rp == self.http_port and st == TCP_ESTABLISHED]  # fmt: skip
            if ports and owner(self.http_port, ports[0], self.workers) == pid:
                return session
            session.session.close()
        raise AssertionError(f"no HTTP connection landed on worker {pid}")


def wait_until(predicate, timeout_s: float, what: str):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@contextlib.contextmanager
def running_service(data_dir: Path) -> Iterator[Service]:
    rtmp_port, http_port = free_port(), free_port()
    env = dict(
        os.environ, LIVECHANNEL_ACCESS_KEY_ID=KEY_ID, LIVECHANNEL_ACCESS_KEY_SECRET=KEY_SECRET
    )
    cmd = [sys.executable, "-m", "livechannel", "serve", "--workers", str(WORKERS),
           "--data-dir", str(data_dir), "--rtmp-listen", f"127.0.0.1:{rtmp_port}",
           "--http-listen", f"127.0.0.1:{http_port}", "--log-level", "WARNING"]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)  # fmt: skip
    try:

        def workers_listening() -> list[int] | None:
            children = [int(p) for p in Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
                        .read_text().split()]  # fmt: skip
            listening = {i for lp, rp, st, i in tcp_table()
                         if st == TCP_LISTEN and lp in (rtmp_port, http_port)}  # fmt: skip
            ready = [pid for pid in children if len(socket_inodes(pid) & listening) == 2]
            return ready if len(ready) == WORKERS else None

        try:
            workers = wait_until(workers_listening, START_TIMEOUT_S, "both workers listening")
        except AssertionError:
            proc.kill()  # its workers follow (they die with their parent), closing stderr
            assert proc.stderr is not None
            raise AssertionError(f"server did not start: {proc.stderr.read()[-2000:]!r}") from None
        yield Service(proc, data_dir, rtmp_port, http_port, workers)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        assert proc.stderr is not None
        proc.stderr.close()


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    with running_service(tmp_path_factory.mktemp("workers") / "data") as svc:
        yield svc


def rtmp_publish_on(service: Service, pid: int, url: str) -> tuple[list[StatusReceived], bool]:
    """Publish with our client over a connection that worker `pid` accepted; return the
    onStatus messages and whether NetStream.Publish.Start came."""
    path = url.split("/", 3)[3]  # "live/live/<channel>?<query>" after rtmp://host:port/
    app, _, name = path.partition("?")[0].rpartition("/")
    client = ClientConnection(app, name + "?" + url.partition("?")[2],
                              f"rtmp://127.0.0.1:{service.rtmp_port}/{app}")  # fmt: skip
    for _ in range(STEER_ATTEMPTS):
        sock = socket.create_connection(("127.0.0.1", service.rtmp_port), timeout=IO_TIMEOUT_S)
        if owner(service.rtmp_port, sock.getsockname()[1], service.workers) == pid:
            break
        sock.close()
    else:
        raise AssertionError(f"no RTMP connection landed on worker {pid}")
    statuses: list[StatusReceived] = []
    started = False
    with sock:
        client.initiate()
        deadline = time.monotonic() + IO_TIMEOUT_S
        while time.monotonic() < deadline and not statuses:
            sock.sendall(client.data_to_send())
            data = sock.recv(65536)
            if not data:
                break
            client.receive_data(data)
            while (event := client.next_event()) is not None:
                if isinstance(event, StatusReceived):
                    statuses.append(event)
                started = started or isinstance(event, PublishStarted)
    return statuses, started


def test_one_publisher_per_channel_across_workers(service: Service) -> None:
    create_channel(service.bucket(), "one")
    url = service.publish_url("one")
    ffmpeg = start(ffmpeg_live(url, duration_s=30, size="320x180", fps=15, bframes=0))
    try:
        holder = wait_until(lambda: service.live_push_worker("one"), 15, "ffmpeg's push")
        other = next(pid for pid in service.workers if pid != holder)
        statuses, started = rtmp_publish_on(service, other, url)
        assert not started
        assert [(s.level, s.description) for s in statuses] == [
            ("error", "channel is already live")
        ]
        assert service.live_push_worker("one") == holder  # the first publisher is untouched
        assert ffmpeg.poll() is None
        # The worker that holds the push refuses a second publisher just the same.
        statuses, started = rtmp_publish_on(service, holder, url)
        assert not started and statuses[0].description == "channel is already live"
    finally:
        stop(ffmpeg)
    wait_until(lambda: service.live_push_worker("one") is None, 15, "the push to end")
    # Once it has ended, another worker takes the channel.
    other_statuses, started = rtmp_publish_on(service, other, url)
    assert started, other_statuses


def test_disable_through_the_other_worker_kicks_the_publisher(service: Service) -> None:
    create_channel(service.bucket(), "kick")
    ffmpeg = start(ffmpeg_live(service.publish_url("kick"), duration_s=30, size="320x180",
                               fps=15, bframes=0))  # fmt: skip
    try:
        holder = wait_until(lambda: service.live_push_worker("kick"), 15, "ffmpeg's push")
        other = next(pid for pid in service.workers if pid != holder)
        bucket = service.bucket(service.session_on(other, "kick"))
        # Live stats reach the other worker's API through the store's heartbeats.
        stat = wait_until(
            lambda: (s := bucket.get_live_channel_stat("kick")).video is not None and s,
            10,
            "stats through the other worker",
        )
        assert (stat.status, stat.video.width, stat.video.height) == ("Live", 320, 180)
        t0 = time.monotonic()
        bucket.put_live_channel_status("kick", "disabled")
        wait_until(lambda: ffmpeg.poll() is not None, KICK_BOUND_S, "ffmpeg to be kicked")
        kicked_after_s = time.monotonic() - t0
        assert ffmpeg.returncode != 0  # ffmpeg reports the broken publish
        assert kicked_after_s <= KICK_BOUND_S
        wait_until(lambda: service.live_push_worker("kick") is None, 10, "the push record end")
        history = bucket.get_live_channel_history("kick").records
        assert len(history) == 1 and history[0].remote_addr.startswith("127.0.0.1")
        # Disabled: no worker takes a publish now.
        for pid in service.workers:
            statuses, started = rtmp_publish_on(service, pid, service.publish_url("kick"))
            assert not started and statuses[0].description == "channel disabled"
    finally:
        stop(ffmpeg)


def test_a_paused_worker_keeps_its_publishers(service: Service) -> None:
    """A worker whose heartbeats stop while its process lives (here SIGSTOP; in the benchmark
    an overloaded box) is slow, not dead: the other worker must not end its pushes. It did,
    and every publisher of the slow worker was disconnected when it caught up."""
    create_channel(service.bucket(), "paused")
    ffmpeg = start(ffmpeg_live(service.publish_url("paused"), duration_s=60, size="320x180",
                               fps=15, bframes=0))  # fmt: skip
    try:
        holder = wait_until(lambda: service.live_push_worker("paused"), 15, "ffmpeg's push")
        os.kill(holder, signal.SIGSTOP)
        try:
            time.sleep(PAUSE_S)
            # the other worker has swept a few times meanwhile; the push is still running
            assert service.live_push_worker("paused") == holder
        finally:
            os.kill(holder, signal.SIGCONT)
        bucket = service.bucket()
        stat = wait_until(
            lambda: (s := bucket.get_live_channel_stat("paused")).video is not None and s,
            10,
            "live figures after the pause",
        )
        assert stat.status == "Live"
        time.sleep(2 * HEARTBEAT_INTERVAL_S)  # the resumed worker's own checks have run
        assert ffmpeg.poll() is None, "the paused worker's publisher was disconnected"
        assert service.live_push_worker("paused") == holder
    finally:
        _, err = stop(ffmpeg)
    assert "heartbeat was late" not in err


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"  # a zombie has exited; only its parent has not reaped it yet


def test_a_dead_worker_stops_the_service_so_a_supervisor_can_restart_it(tmp_path: Path) -> None:
    with running_service(tmp_path / "data") as svc:
        crashed, other = svc.workers
        os.kill(crashed, signal.SIGKILL)
        assert svc.proc.wait(timeout=START_TIMEOUT_S) != 0
        assert not alive(other)
        assert svc.proc.stderr is not None
        said = svc.proc.stderr.read().decode()
        assert "worker-" in said and "exited with code -9; stopping the other workers" in said


def test_workers_die_with_a_killed_supervisor(tmp_path: Path) -> None:
    with running_service(tmp_path / "data") as svc:
        svc.proc.kill()  # SIGKILL: the supervisor cannot forward anything
        svc.proc.wait()
        wait_until(lambda: not any(map(alive, svc.workers)), START_TIMEOUT_S, "workers gone")
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", svc.rtmp_port), timeout=IO_TIMEOUT_S)


@pytest.mark.parametrize("workers", [1, 2])
def test_serves_when_its_parent_is_pid_1(tmp_path: Path, workers: int) -> None:
    """Under systemd or as a container's child, the service's parent is pid 1; a worker must
    not take that for "my supervisor died" (it did, and exited at once)."""
    rtmp_port, http_port = free_port(), free_port()
    cmd = [sys.executable, "-m", "livechannel", "serve", "--workers", str(workers),
           "--data-dir", str(tmp_path / "data"), "--rtmp-listen", f"127.0.0.1:{rtmp_port}",
           "--http-listen", f"127.0.0.1:{http_port}", "--log-level", "WARNING"]  # fmt: skip
    env = dict(
        os.environ, LIVECHANNEL_ACCESS_KEY_ID=KEY_ID, LIVECHANNEL_ACCESS_KEY_SECRET=KEY_SECRET
    )
    # The shell starts it in the background and exits: the service is reparented to pid 1.
    shell = subprocess.run(
        ["sh", "-c", f'{shlex.join(cmd)} >"$1" 2>&1 & echo $!', "sh", str(tmp_path / "log")],
        cwd=ROOT, env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    pid = int(shell.stdout)
    try:
        assert Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1] == "1"

        def serving() -> bool:
            listening = {lp for lp, rp, st, i in tcp_table() if st == TCP_LISTEN}
            return {rtmp_port, http_port} <= listening and alive(pid)

        wait_until(serving, START_TIMEOUT_S, "the service listening")
        time.sleep(1)  # a worker exiting on a wrong "parent died" check does so at once
        assert serving(), (tmp_path / "log").read_text()
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        wait_until(lambda: not alive(pid), START_TIMEOUT_S, "the service stopped")


def running_pushes(data_dir: Path) -> int:
    with contextlib.closing(sqlite3.connect(data_dir / "livechannel.db")) as db:
        return int(db.execute("SELECT count(*) FROM pushes WHERE end_ms IS NULL").fetchone()[0])


def test_ffmpeg_reconnects_at_once_after_kill_9_of_every_process(tmp_path: Path) -> None:
    """kill -9 of the supervisor and both workers mid-push, a restart, and ffmpeg publishing
    again at once: accepted (the node ends its earlier run's push before listening, whichever
    worker held it), the interrupted push closed in the history."""
    data = tmp_path / "data"
    with running_service(data) as svc:
        create_channel(svc.bucket(), "back", frag_duration=1, frag_count=5)
        first = start(ffmpeg_live(svc.publish_url("back"), duration_s=30, size="320x180",
                                  fps=15, gop_s=1, bframes=0))  # fmt: skip
        try:
            wait_until(lambda: svc.live_push_worker("back"), 15, "ffmpeg's push")
            for pid in svc.workers:  # first, so that none gets the supervisor's SIGTERM
                os.kill(pid, signal.SIGKILL)
            svc.proc.kill()
            svc.proc.wait()
        finally:
            stop(first)
    assert running_pushes(data) == 1  # left running: nothing ended it
    with running_service(data) as svc:
        again = ffmpeg_live(svc.publish_url("back"), duration_s=2, size="320x180", fps=15,
                            gop_s=1, bframes=0)  # fmt: skip
        r = run(again, timeout_s=30)
        assert r.returncode == 0, f"the reconnect was refused: {r.stderr[-1000:]}"
        wait_until(lambda: svc.live_push_worker("back") is None, 15, "the push to end")
        records = svc.bucket().get_live_channel_history("back").records
        assert len(records) == 2 and all(rec.end_time for rec in records), records
