"""Compare obstore and aiobotocore for this service's S3 workload (docs/storage.md has results).

The workload: many small PUTs (a ~400 B playlist after every segment) and fewer ~1 MiB PUTs
(the segments), a few channels at once, on the same event loop as RTMP ingest. Measured per
client, each in its own fresh process so memory figures do not mix:

- client CPU per request (process time: Python and, for obstore, its Rust threads),
- the worst event-loop stall seen by a 5 ms ticker (what RTMP connections would feel),
- TCP connections opened (connection reuse), counted by the server,
- resident memory: after import + client creation, and the peak during the run.

The server is a tiny aiohttp "S3 sink" in a subprocess (answers PUT with an ETag, no
signature check), so the figures are the client's, not moto's.

Usage (needs both libraries; aiobotocore is not a dependency of the project):
    pip install obstore aiobotocore
    python bench/s3_clients.py
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time

SMALL_PUTS = 1000  # playlists: one per segment per channel
SMALL_BYTES = 400  # a live playlist of 3-5 segments
BIG_PUTS = 200  # segments
BIG_BYTES = 1024 * 1024  # 2 s of 4 Mbit/s video
CONCURRENCY = 8  # channels uploading at the same time
TICK_S = 0.005  # the stall probe's period

SINK = r"""
import hashlib, sys
from aiohttp import web
peers = set()
async def handle(request):
    peers.add(request.transport.get_extra_info("peername"))
    if request.path == "/__stats":
        return web.json_response({"connections": len(peers)})
    body = await request.read()
    return web.Response(headers={"ETag": '"%s"' % hashlib.md5(body).hexdigest()})
app = web.Application(client_max_size=64 * 1024 * 1024)
app.router.add_route("*", "/{tail:.*}", handle)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None)
"""


def rss_kib() -> tuple[int, int]:
    """(current RSS, peak RSS) of this process in KiB."""
    fields = {}
    with open("/proc/self/status") as f:
        for line in f:
            name, _, value = line.partition(":")
            fields[name] = value.split()[0] if value.split() else "0"
    return int(fields["VmRSS"]), int(fields["VmHWM"])


async def make_obstore(endpoint: str):  # type: ignore[no-untyped-def]
    import obstore
    from obstore.store import S3Store

    store = S3Store(
        "bench",
        endpoint=endpoint,
        region="us-east-1",
        access_key_id="k",
        secret_access_key="s",
        virtual_hosted_style_request=False,
        client_options={"allow_http": True},
    )

    async def put(key: str, data: bytes) -> None:
        await obstore.put_async(store, key, data)

    return put, None


async def make_aiobotocore(endpoint: str):  # type: ignore[no-untyped-def]
    from aiobotocore.config import AioConfig
    from aiobotocore.session import get_session

    session = get_session()
    cm = session.create_client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="k",
        aws_secret_access_key="s",
        config=AioConfig(s3={"addressing_style": "path"}, max_pool_connections=CONCURRENCY),
    )
    client = await cm.__aenter__()

    async def put(key: str, data: bytes) -> None:
        await client.put_object(Bucket="bench", Key=key, Body=data)

    return put, cm


async def run_client(name: str, endpoint: str) -> dict[str, object]:
    rss_start, _ = rss_kib()
    factory = make_obstore if name == "obstore" else make_aiobotocore
    put, cm = await factory(endpoint)
    await put("warmup", b"x")  # first request loads models / starts runtimes
    rss_ready, _ = rss_kib()
    worst_stall_s = 0.0
    stop = asyncio.Event()

    async def ticker() -> None:
        nonlocal worst_stall_s
        while not stop.is_set():
            before = time.perf_counter()
            await asyncio.sleep(TICK_S)
            worst_stall_s = max(worst_stall_s, time.perf_counter() - before - TICK_S)

    probe = asyncio.create_task(ticker())
    results: dict[str, object] = {}
    small = b"#EXTM3U\n" + b"x" * (SMALL_BYTES - 8)
    big = os.urandom(BIG_BYTES)
    for label, count, data in (("small", SMALL_PUTS, small), ("big", BIG_PUTS, big)):
        queue = list(range(count))
        cpu0, wall0 = time.process_time(), time.perf_counter()

        async def worker(
            w: int, data: bytes = data, label: str = label, queue: list[int] = queue
        ) -> None:
            while queue:
                i = queue.pop()
                await put(f"ch{w}/{label}{i}", data)

        await asyncio.gather(*(worker(w) for w in range(CONCURRENCY)))
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        results[f"{label}_cpu_ms_per_put"] = round(cpu * 1000 / count, 3)
        results[f"{label}_puts_per_s"] = round(count / wall)
    stop.set()
    await probe
    _, rss_peak = rss_kib()
    results["worst_loop_stall_ms"] = round(worst_stall_s * 1000, 1)
    results["rss_after_setup_mib"] = round((rss_ready - rss_start) / 1024, 1)
    results["rss_peak_mib"] = round(rss_peak / 1024, 1)
    if cm is not None:
        await cm.__aexit__(None, None, None)
    return results


def main() -> None:
    if len(sys.argv) == 3:  # child: one client
        print(json.dumps(asyncio.run(run_client(sys.argv[1], sys.argv[2]))))
        return
    import socket

    for name in ("obstore", "aiobotocore"):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        sink = subprocess.Popen([sys.executable, "-c", SINK, str(port)])
        try:
            endpoint = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 10
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), 0.2).close()
                    break
                except OSError:
                    assert time.monotonic() < deadline, "sink did not start"
                    time.sleep(0.05)
            out = subprocess.run(
                [sys.executable, __file__, name, endpoint],
                capture_output=True,
                text=True,
                check=True,
                timeout=600,
            ).stdout
            result = json.loads(out.strip().splitlines()[-1])
            import urllib.request

            with urllib.request.urlopen(f"{endpoint}/__stats") as r:
                result["tcp_connections"] = json.load(r)["connections"] - 1  # not ours
            print(name, json.dumps(result))
        finally:
            sink.terminate()
            sink.wait(10)


if __name__ == "__main__":
    main()
