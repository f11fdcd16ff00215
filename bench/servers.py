"""The two servers under test, started and stopped by PID, and what /proc says about them.

`OursServer` runs `python -m livechannel serve` (uvloop, `--workers N`) on loopback with a
fresh data directory and a public-read-write bucket (the load generator needs no signed URL;
signing costs nothing per byte anyway), and creates the channels through `oss2`.
`NginxServer` runs Debian's nginx with libnginx-mod-rtmp from a config written into a temp
directory: one worker, `hls on`, the same FragDuration/FragCount, loopback only.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
LOG_TAIL_CHARS = 1500  # of the server's log, in the error when it dies at start
START_TIMEOUT_S = 20.0  # both servers listen within a second or two; 20 s means broken
STOP_TIMEOUT_S = 20.0  # ours flushes every open segment on SIGTERM; then SIGKILL
HTTP_TIMEOUT_S = 10.0  # one channel creation on loopback takes milliseconds
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")
NGINX_RTMP_MODULE = "/usr/lib/nginx/modules/ngx_rtmp_module.so"
BENCH_KEY_ID, BENCH_KEY_SECRET = "LTAIbenchkey000001", "bench-secret-not-for-production"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_listening(
    port: int, proc: subprocess.Popen[bytes], what: str, log: Path | None = None
) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            said = log.read_text(errors="replace")[-LOG_TAIL_CHARS:] if log else ""
            raise RuntimeError(f"{what} exited with {proc.returncode} before listening: {said}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on {port} within {START_TIMEOUT_S} s")


def process_tree(root_pid: int) -> list[int]:
    """root_pid and all its descendants (forked workers, nginx's worker)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rpartition(")")[2].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    tree, todo = [], [root_pid]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU of these processes (all their threads)."""
    return sum(cpu_times(pids))


def cpu_times(pids: list[int]) -> tuple[float, float]:
    """(user, system) CPU seconds of these processes (all their threads)."""
    user = system = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        user += int(fields[11])  # utime (proc(5) field 14)
        system += int(fields[12])  # stime (field 15)
    return user / CLK_TCK, system / CLK_TCK


def rss_bytes(pids: list[int], field: str = "VmRSS") -> int:
    """Sum of VmRSS (or VmHWM, the peak) of these processes."""
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith(field + ":"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            continue
    return total


class Server:
    name = ""
    workers = 1  # processes doing the ingest work (a CPU quota scales with it)
    chunk_size = 0  # what this server announces, so what libavformat would send it
    proc: subprocess.Popen[bytes] | None = None

    def url(self, channel: str) -> str:
        raise NotImplementedError

    def segment_dir(self, channel: str) -> Path:
        raise NotImplementedError

    def playlist_name(self) -> str:
        raise NotImplementedError

    def prepare_channels(self, names: list[str]) -> None:
        for name in names:
            self.segment_dir(name).mkdir(parents=True, exist_ok=True)

    def pids(self) -> list[int]:
        assert self.proc is not None
        return process_tree(self.proc.pid)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(sig)
        try:
            proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# Every publisher comes from 127.0.0.1: lift the per-address cap (64 by default), nothing else.
BENCH_TOML = """\
[limits]
max_connections_per_ip = 100000
"""


# The `buffered` variant: segments through the page cache, as before direct writes.
BUFFERED_TOML = """
[[buckets]]
name = "live"
[buckets.storage]
direct_io = false
"""


# The `nometrics` variant: metrics off entirely (no /-/metrics, no timing of store and storage
# calls, no HTTP counting), against which `ours-metrics` measures what metrics cost.
NO_METRICS_TOML = "metrics = false\n"
METRICS_SCRAPE_TIMEOUT_S = 5.0


class Scraper:
    """Prometheus' part in `ours-metrics`: GET /-/metrics every `interval_s` while the trial
    runs (a thread of the load generator: its CPU is not the server's)."""

    def __init__(self, url: str, interval_s: float) -> None:
        self.url, self.interval_s = url, interval_s
        self.scrapes = self.failures = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="scraper", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(METRICS_SCRAPE_TIMEOUT_S + 1)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                with urllib.request.urlopen(self.url, timeout=METRICS_SCRAPE_TIMEOUT_S) as r:
                    r.read()
                self.scrapes += 1
            except OSError:
                self.failures += 1


class OursServer(Server):
    def __init__(
        self,
        workdir: Path,
        workers: int = 1,
        snapshot_interval_s: int = 0,
        direct_io: bool = True,
        metrics: bool = True,
        scrape_interval_s: float = 0.0,
        segment_format: str = "ts",
        part_duration_s: float = 0.0,
        tree: Path | None = None,
    ) -> None:
        self.name = f"livechannel --workers {workers}"
        if tree is not None:
            self.name += f", from {tree}"
        self.tree = tree or ROOT  # the checkout whose livechannel runs (python -m from there)
        if snapshot_interval_s:
            self.name += f", snapshots every {snapshot_interval_s} s"
        if not direct_io:
            self.name += ", buffered writes"
        if not metrics:
            self.name += ", metrics off"
        if scrape_interval_s:
            self.name += f", /-/metrics scraped every {scrape_interval_s:g} s"
        self.metrics = metrics
        self.scraper: Scraper | None = None
        self.scrape_interval_s = scrape_interval_s
        if part_duration_s:
            self.name += f", LL-HLS ({part_duration_s:g} s parts)"
        elif segment_format != "ts":
            self.name += f", {segment_format}"
        self.segment_format, self.part_duration_s = segment_format, part_duration_s
        self.direct_io = direct_io
        self.workdir = workdir
        self.workers = workers
        self.snapshot_interval_s = snapshot_interval_s
        self.chunk_size = 65536  # rtmp/connection.py SERVER_CHUNK_SIZE
        self.rtmp_port, self.http_port = free_port(), free_port()
        self.data_dir = workdir / "data"

    def start(self) -> None:
        env = dict(os.environ, LIVECHANNEL_ACCESS_KEY_ID=BENCH_KEY_ID,
                   LIVECHANNEL_ACCESS_KEY_SECRET=BENCH_KEY_SECRET)  # fmt: skip
        config = self.workdir / "bench.toml"
        toml = ("" if self.metrics else NO_METRICS_TOML) + BENCH_TOML
        toml += "" if self.direct_io else BUFFERED_TOML
        if self.segment_format != "ts":
            if self.direct_io:
                toml += '\n[[buckets]]\nname = "live"\n'
            toml += (f'[buckets.hls]\nsegment_format = "{self.segment_format}"\n'
                     f"part_duration_s = {self.part_duration_s}\n")  # fmt: skip
        config.write_text(toml)
        cmd = [
            sys.executable, "-m", "livechannel", "serve",
            "--config", str(config),
            "--data-dir", str(self.data_dir),
            "--rtmp-listen", f"127.0.0.1:{self.rtmp_port}",
            "--http-listen", f"127.0.0.1:{self.http_port}",
            "--bucket-acl", "public-read-write",
            "--workers", str(self.workers),
            "--log-level", "WARNING",
        ]  # fmt: skip
        log = open(self.workdir / "server.log", "wb")  # noqa: SIM115 - lives with the process
        self.proc = subprocess.Popen(cmd, cwd=self.tree, env=env, stdout=log, stderr=log)
        wait_listening(self.rtmp_port, self.proc, self.name, self.workdir / "server.log")
        wait_listening(self.http_port, self.proc, self.name, self.workdir / "server.log")
        if self.scrape_interval_s:
            url = f"http://127.0.0.1:{self.http_port}/-/metrics"
            self.scraper = Scraper(url, self.scrape_interval_s)
            self.scraper.start()

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.scraper is not None:
            self.scraper.stop()
            print(f"{self.name}: {self.scraper.scrapes} scrapes, {self.scraper.failures} "
                  "failed", file=sys.stderr)  # fmt: skip
        super().stop(sig)

    def create_channels(self, names: list[str], frag_duration_s: int, frag_count: int) -> None:
        import oss2

        bucket = oss2.Bucket(
            oss2.Auth(BENCH_KEY_ID, BENCH_KEY_SECRET), f"http://127.0.0.1:{self.http_port}", "live"
        )
        target = oss2.models.LiveChannelInfoTarget(
            playlist_name="playlist.m3u8", frag_count=frag_count, frag_duration=frag_duration_s
        )
        for name in names:
            if self.snapshot_interval_s:
                put_channel_with_snapshot(
                    bucket,
                    name,
                    frag_duration_s=frag_duration_s,
                    frag_count=frag_count,
                    interval_s=self.snapshot_interval_s,
                ).raise_for_status()
            else:
                bucket.create_live_channel(name, oss2.models.LiveChannelInfo(target=target))

    def url(self, channel: str) -> str:
        return f"rtmp://127.0.0.1:{self.rtmp_port}/live/{channel}"

    def segment_dir(self, channel: str) -> Path:
        return self.data_dir / "buckets" / "live" / channel

    def playlist_name(self) -> str:
        return "playlist.m3u8"


def put_channel_with_snapshot(
    bucket: Any,
    channel: str,
    *,
    frag_duration_s: int,
    frag_count: int,
    interval_s: int,
    dest: str = "",
) -> Any:
    """PutLiveChannel with a Snapshot config. oss2 has no Snapshot field, so this is the same
    PUT ?live signed by oss2 (`bucket`: an oss2.Bucket) with the body written by hand; returns
    the requests.Response."""
    import requests

    body = (
        f"<LiveChannelConfiguration><Target><Type>HLS</Type><FragDuration>{frag_duration_s}"
        f"</FragDuration><FragCount>{frag_count}</FragCount></Target><Snapshot>"
        f"<RoleName>role</RoleName><DestBucket>{dest}</DestBucket><NotifyTopic>topic"
        f"</NotifyTopic><Interval>{interval_s}</Interval></Snapshot></LiveChannelConfiguration>"
    )
    headers = {"Content-Type": "application/xml"}
    url = bucket.sign_url("PUT", channel, 300, headers=headers, params={"live": ""})
    return requests.put(url, data=body.encode(), headers=headers, timeout=HTTP_TIMEOUT_S)


NGINX_CONF = """\
load_module {module};
{user}
worker_processes {workers};
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 4096; }}
rtmp {{
    server {{
        listen 127.0.0.1:{port};
        chunk_size 4096;
        application live {{
            live on;
            hls on;
            hls_path {dir}/hls;
            hls_nested on;
            hls_fragment {frag_s}s;
            hls_playlist_length {playlist_s}s;
            hls_cleanup off;
        }}
    }}
}}
"""


class NginxServer(Server):
    def __init__(
        self, workdir: Path, frag_duration_s: int, frag_count: int, workers: int = 1
    ) -> None:
        self.name = f"nginx-rtmp ({workers} worker{'s' if workers > 1 else ''})"
        self.workers = workers
        self.workdir = workdir
        self.chunk_size = 4096  # nginx-rtmp's default chunk_size, which we also set
        self.port = free_port()
        self.frag_duration_s = frag_duration_s
        self.frag_count = frag_count

    @staticmethod
    def available() -> bool:
        return shutil.which("nginx") is not None and Path(NGINX_RTMP_MODULE).exists()

    def start(self) -> None:
        conf = self.workdir / "nginx.conf"
        conf.write_text(
            NGINX_CONF.format(
                module=NGINX_RTMP_MODULE,
                user="user root;" if os.geteuid() == 0 else "",  # the worker writes our dir
                dir=self.workdir,
                port=self.port,
                workers=self.workers,
                frag_s=self.frag_duration_s,
                playlist_s=self.frag_duration_s * self.frag_count,
            )
        )
        (self.workdir / "hls").mkdir(exist_ok=True)
        cmd = [
            "nginx",
            "-c",
            str(conf),
            "-p",
            str(self.workdir),
            "-e",
            str(self.workdir / "error.log"),
        ]
        log = open(self.workdir / "server.log", "wb")  # noqa: SIM115 - lives with the process
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=log)
        wait_listening(self.port, self.proc, self.name)

    def stop(self, sig: int = signal.SIGQUIT) -> None:
        super().stop(sig)  # SIGQUIT: graceful; nginx-rtmp closes its fragments

    def url(self, channel: str) -> str:
        return f"rtmp://127.0.0.1:{self.port}/live/{channel}"

    def segment_dir(self, channel: str) -> Path:
        return self.workdir / "hls" / channel

    def playlist_name(self) -> str:
        return "index.m3u8"


def version_of(cmd: list[str]) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    return (out.stdout + out.stderr).strip().splitlines()[0] if (out.stdout + out.stderr) else "?"
