#!/usr/bin/env python3
"""Bounded soak on loopback (docs/robustness.md, Soak): real publishers keep streaming while
hostile traffic hits the same service, then the damage report.

    python scripts/soak.py                      # 5 publishers, 180 s of attacks
    python scripts/soak.py --attack-s 60 --publishers 3

What runs:
- the service in this process (uvloop, exactly `serve()` as the CLI runs it), so its event
  loop's tasks, descriptors and RSS can be counted;
- N ffmpeg publishers (x264 + AAC, `-re`), one channel each;
- a separate attacker process (so its work does not steal this process's GIL) that opens 1,000
  half-open handshakes at once on both ports and, for `--attack-s` seconds, random and mutated
  RTMP sessions and malformed HTTP requests (tests/robustness/garbage.py), from many loopback
  source addresses (127.0.2.x), as a fleet of hosts would; and per round, SLOW_CLIENTS HTTP
  clients that stop reading a large object and as many that trickle a request body
  (tests/robustness/slow_clients.py): each must be cut off by the service's deadlines;
- then the buffer-pinning attack (tests/robustness/pinning.py): 16 unauthenticated
  connections, each sending 250 chunks of 4 KiB of one partial message among ~62 MB of other
  traffic; RSS while they are open must stay within what the partial-message limit counts,
  and return once they leave without a gc.collect().

Pass criteria (exit status 0 only if all hold): every publisher's segments are contiguous
(sequence numbers, no discontinuity), no segment arrived later than one segment past the
previous one (no stall), the stored media covers the pushed time; RSS after the attacks is
within the baseline band; descriptors and asyncio tasks are back to their baseline.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import itertools
import json
import logging
import multiprocessing
import os
import random
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import oss2  # noqa: E402
import uvloop  # noqa: E402

from livechannel.config import BucketConfig, Config, Limits, Listen  # noqa: E402
from livechannel.ops.memory import TRIM_INTERVAL_S  # noqa: E402
from livechannel.server import Running, serve  # noqa: E402
from livechannel.store.base import Acl  # noqa: E402
from samples.make_sample import SampleSpec, make_sample  # noqa: E402
from tests.robustness import garbage, pinning, slow_clients  # noqa: E402
from tests.robustness.rtmp_session import flv_tags  # noqa: E402
from tests.support import publishers  # noqa: E402
from tests.support.hls_validator import validate_media_playlist  # noqa: E402

KEY_ID, SECRET = "LTAIsoakkey00001", "soak-secret-0123456789abcdef"
BUCKET = "live"
OPEN_BUCKET = "open"
FRAG_S = 2  # FragDuration of the publishers' channels
GOP_S = 1  # their keyframe interval
WARMUP_S = 15.0  # publishers settle (first segments, steady heap) before the baseline
HALF_OPEN = 1_000  # 1,000 half-open handshakes (docs/robustness.md, Soak)
ATTACK_CONCURRENCY = 48  # hostile sessions in flight at once, besides the half-open ones
SOURCE_ADDRESSES = 250  # 127.0.2.1..250: 4 half-open per address, under the per-address cap
HANDSHAKE_TIMEOUT_S = 10.0  # the service default; half-open sockets die after this
COOLDOWN_S = HANDSHAKE_TIMEOUT_S + 5.0  # after the attack: every hostile socket is gone
RSS_BAND_BYTES = 24 * 1024 * 1024  # "back to baseline": allocator slack after a burst
RSS_BAND_RATIO = 0.15  # or 15 % of the baseline, whichever is larger
ROUND_GROWTH_BYTES = 4 * 1024 * 1024  # a second round may not add more: that would be a leak
FD_SLACK = 2  # a descriptor or two may be mid-close (sqlite journal, a TIME_WAIT accept)
TASK_SLACK = 2  # a heartbeat / end-timer task may be in flight at the instant of counting
MEDIA_SLACK_S = 3.0  # encoder start-up plus the partial segment at the end
SLOW_CLIENTS = 16  # per round and kind: non-readers of a large object, body tricklers
BIG_OBJECT_BYTES = 8 * 1024 * 1024  # far more than both sides' socket buffers hold
BIG_OBJECT_KEY = "big/segment.ts"  # in the public bucket: readable without a signature
# Longer than the service's send stall deadline (Limits.http_send_stall_timeout_s)
SLOW_READ_HOLD_S = Limits().http_send_stall_timeout_s + 10.0
TRICKLE_DEADLINE_S = Limits().http_body_timeout_s + 10.0
PIN_CONNECTIONS = 16  # the buffer-pinning attack (tests/robustness/pinning.py): connections ...
PIN_ROUNDS = 250  # ... each sending this many 4 KiB chunks, each with ~250 KiB of other traffic
PIN_GROWTH_SLACK = 1.125  # the allocator's rounding of what is counted (test_pinning.py)


# --- the service, in this process -------------------------------------------------------------


class Service:
    def __init__(self, data_dir: Path) -> None:
        self.config = replace(
            Config(),
            data_dir=data_dir,
            rtmp_listen=Listen("127.0.0.1", 0),
            http_listen=Listen("127.0.0.1", 0),
            # hostile XML goes to a public-read-write bucket, so it reaches the XML parser
            buckets=(BucketConfig(BUCKET), BucketConfig(OPEN_BUCKET, Acl.PUBLIC_READ_WRITE)),
            access_keys={KEY_ID: SECRET},
            demo_channel="",
            end_grace_s=5.0,
            limits=Limits(handshake_timeout_s=HANDSHAKE_TIMEOUT_S),
        )
        self.loop = uvloop.new_event_loop()
        self.running: Running | None = None
        self._ready = threading.Event()
        self._shutdown: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="service", daemon=True)

    def _run(self) -> None:
        async def main() -> None:
            self._shutdown = asyncio.Event()

            def ready(running: Running) -> None:
                self.running = running
                self._ready.set()

            await serve(self.config, self._shutdown, ready)

        self.loop.run_until_complete(main())

    def start(self) -> Service:
        self._thread.start()
        if not self._ready.wait(20):
            raise SystemExit("service did not start")
        return self

    def stop(self) -> None:
        assert self._shutdown is not None
        self.loop.call_soon_threadsafe(self._shutdown.set)
        self._thread.join(30)

    def call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(20)

    def tasks(self) -> int:
        async def count() -> int:
            return len(asyncio.all_tasks()) - 1  # not this one

        return int(self.call(count()))

    @property
    def ports(self) -> dict[str, int]:
        assert self.running is not None
        return {"rtmp": self.running.rtmp_port, "http": self.running.http_port}

    def bucket(self) -> oss2.Bucket:
        return oss2.Bucket(oss2.Auth(KEY_ID, SECRET), f"http://127.0.0.1:{self.ports['http']}",
                           BUCKET)  # fmt: skip


def rss_bytes() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def fd_targets() -> Counter[str]:
    """What the descriptors point at (socket/pipe ids masked), to name a leak."""
    targets: Counter[str] = Counter()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        targets[re.sub(r"\[\d+\]", "", target)] += 1
    return targets


class ReasonCounter(logging.Handler):
    """Counts the service's log lines by what they say, numbers and names masked."""

    PREFIX = re.compile(r"^\[conn \d+ \S+ \S+\] ")
    VARYING = re.compile(r"\d+|'[^']*'|\S+:\d+|0x[0-9a-f]+")

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.reasons: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()

    def emit(self, record: logging.LogRecord) -> None:
        if not record.name.startswith(("livechannel", "aiohttp")):
            return
        text = self.PREFIX.sub("", record.getMessage())
        text = self.VARYING.sub("#", text)[:70]
        (self.errors if record.levelno >= logging.ERROR else self.reasons)[text] += 1


# --- the attacker, in its own process ---------------------------------------------------------


def attacker(ports: dict[str, int], attack_s: float, recording: bytes, seed: int,
             slow_clients_n: int, results: Any) -> None:  # fmt: skip
    """Half-open handshakes plus a stream of hostile sessions; reports Counters as JSON."""
    rng = random.Random(seed)
    factory = garbage.AttackFactory(recording, rng, xml_bucket=OPEN_BUCKET)
    sources = [f"127.0.2.{i}" for i in range(1, SOURCE_ADDRESSES + 1)]
    slow_sources = [f"127.0.3.{i}" for i in range(1, slow_clients_n + 1)]  # a slot each

    async def main() -> dict[str, Any]:
        tried: Counter[str] = Counter()
        ended: Counter[str] = Counter()
        half_open_s: list[float] = []
        unclosed: Counter[str] = Counter()

        async def one(attack: garbage.Attack, source: str) -> None:
            tried[attack.kind] += 1
            outcome = await garbage.run_async(attack, ports, source)
            ended[f"{attack.kind}: {outcome.ended}"] += 1
            if attack.kind == "half-open handshake":
                half_open_s.append(outcome.seconds)
                if outcome.ended != "closed by server":
                    unclosed[f"{attack.detail}: {outcome.ended}"] += 1

        half_open = [asyncio.create_task(one(factory.half_open(), sources[i % len(sources)]))
                     for i in range(HALF_OPEN)]  # fmt: skip

        async def slow(kind: str, source: str) -> None:
            tried[kind] += 1
            if kind == "non-reader":
                outcome = await slow_clients.stop_reading(
                    ports["http"], source, f"/{OPEN_BUCKET}/{BIG_OBJECT_KEY}",
                    BIG_OBJECT_BYTES, SLOW_READ_HOLD_S)  # fmt: skip
                failed = outcome != "cut off by server"
            else:
                outcome = await slow_clients.trickle_body(
                    ports["http"], source, f"/{OPEN_BUCKET}/trickle?live", TRICKLE_DEADLINE_S
                )
                failed = outcome != "400 RequestTimeout"
            ended[f"{kind}: {outcome}"] += 1
            if failed:
                unclosed[f"{kind}: {outcome}"] += 1

        kinds = ("non-reader", "body trickler")
        half_open += [asyncio.create_task(slow(k, s)) for k in kinds for s in slow_sources]
        deadline = time.monotonic() + attack_s
        running: set[asyncio.Task[None]] = set()
        n = 0
        while time.monotonic() < deadline:
            while len(running) < ATTACK_CONCURRENCY:
                task = asyncio.create_task(one(factory.draw(), sources[n % len(sources)]))
                running.add(task)
                task.add_done_callback(running.discard)
                n += 1
            await asyncio.sleep(0.005)
        await asyncio.gather(*running, *half_open)
        return {"tried": tried, "ended": ended, "unclosed": unclosed,
                "half_open_max_s": max(half_open_s, default=0.0)}  # fmt: skip

    results.put(json.dumps(asyncio.run(main())))


def pinner(port: int, results: Any, release: Any) -> None:
    """The buffer-pinning attack: PIN_CONNECTIONS connections that never authenticate, each
    holding PIN_ROUNDS chunks of a partial message; reports when all is sent, closes them when
    `release` is set."""
    socks = [pinning.attack(port, PIN_ROUNDS) for _ in range(PIN_CONNECTIONS)]
    results.put("sent")
    release.wait(60)
    for sock in socks:
        sock.close()


def pin_round(svc: Service, mp: Any, results: Any) -> tuple[int, int, list[str]]:
    """(RSS while the pinning connections are open, RSS after they left with no gc.collect(),
    problems). The service holds what the partial-message limit counts, and frees it by
    reference counting when the connections go."""
    before = rss_bytes()
    release = mp.Event()
    proc = mp.Process(target=pinner, args=(svc.ports["rtmp"], results, release))
    proc.start()
    results.get(timeout=120)
    time.sleep(2.0)  # the service has read what was sent
    during = rss_bytes()
    release.set()
    proc.join(30)
    proc.close()
    time.sleep(TRIM_INTERVAL_S + 2.0)  # the service gives free heap pages back this often
    after = rss_bytes()  # no gc.collect(): reference counting alone must have freed it
    counted = PIN_CONNECTIONS * PIN_ROUNDS * pinning.CHUNK_BYTES
    problems: list[str] = []
    if during - before > counted * PIN_GROWTH_SLACK + RSS_BAND_BYTES:
        problems.append(f"pinning attack: RSS grew {during - before} bytes for {counted} counted")
    if after - before > RSS_BAND_BYTES:
        problems.append(f"pinning attack: RSS {after - before} bytes above where it was, after")
    return during, after, problems


# --- checks -----------------------------------------------------------------------------------


def check_channel(svc: Service, channel: str, pushed_s: float) -> list[str]:
    problems = []
    segments = svc.call(svc.running.store.segments_between(BUCKET, channel, 0, 2**62))  # type: ignore[union-attr]
    history = svc.call(svc.running.store.history(BUCKET, channel, 10))  # type: ignore[union-attr]
    if len(history) != 1:
        problems.append(f"{channel}: {len(history)} pushes (interrupted?)")
    if [s.seq for s in segments] != list(range(len(segments))):
        problems.append(f"{channel}: sequence numbers not contiguous")
    if any(s.discontinuity for s in segments):
        problems.append(f"{channel}: a discontinuity")
    gaps_ms = [b.start_ms - a.start_ms for a, b in itertools.pairwise(segments)]
    worst_gap_ms = max(gaps_ms, default=0)
    longest_ms = max((s.duration_ms for s in segments), default=0)
    if worst_gap_ms > longest_ms + (FRAG_S + GOP_S) * 1000:
        problems.append(f"{channel}: a stall of {worst_gap_ms} ms between segments")
    media_s = sum(s.duration_ms for s in segments) / 1000
    if media_s < pushed_s - MEDIA_SLACK_S:
        problems.append(f"{channel}: {media_s:.1f} s stored of {pushed_s:.1f} s pushed")
    playlist = (svc.config.data_dir / "buckets" / BUCKET / channel / "playlist.m3u8").read_text()
    try:
        validate_media_playlist(playlist)
    except AssertionError as e:
        problems.append(f"{channel}: invalid playlist: {e}")
    print(f"  {channel}: {len(segments)} segments, {media_s:.1f} s stored of "
          f"{pushed_s:.1f} s pushed, worst arrival gap {worst_gap_ms} ms, "
          f"longest segment {longest_ms} ms")  # fmt: skip
    return problems


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--publishers", type=int, default=5)
    p.add_argument("--attack-s", type=float, default=180.0, help="total, split into rounds")
    p.add_argument("--rounds", type=int, default=2, help="RSS must level off between rounds")
    p.add_argument("--size", default="320x180", help="publishers' picture size")
    p.add_argument("--seed", type=int, default=6)
    p.add_argument("--slow-clients", type=int, default=SLOW_CLIENTS,
                   help="per round: non-readers of a big object, as many tricklers")  # fmt: skip
    args = p.parse_args()

    counter = ReasonCounter()
    logging.getLogger().addHandler(counter)
    logging.getLogger().setLevel(logging.INFO)
    tmp = Path(tempfile.mkdtemp(prefix="livechannel-soak-"))
    svc = Service(tmp / "data").start()
    channels = [f"soak{i}" for i in range(args.publishers)]
    push_s = WARMUP_S + args.attack_s + args.rounds * COOLDOWN_S + 10
    procs = []
    problems: list[str] = []
    try:
        for channel in channels:
            target = oss2.models.LiveChannelInfoTarget(
                playlist_name="playlist.m3u8", frag_count=5, frag_duration=FRAG_S)  # fmt: skip
            svc.bucket().create_live_channel(channel, oss2.models.LiveChannelInfo(target=target))
        svc.bucket().create_live_channel("fuzz", oss2.models.LiveChannelInfo(
            target=oss2.models.LiveChannelInfoTarget(frag_count=3, frag_duration=1)))  # fmt: skip
        big = svc.config.data_dir / "buckets" / OPEN_BUCKET / BIG_OBJECT_KEY
        big.parent.mkdir(parents=True, exist_ok=True)
        big.write_bytes(os.urandom(BIG_OBJECT_BYTES))
        sample = make_sample(tmp / "fuzz.flv", SampleSpec(duration_s=3, width=320, height=180,
                                                         gop_s=1, bframes=0))  # fmt: skip
        url = svc.bucket().sign_rtmp_url("fuzz", "playlist.m3u8", 3600)
        url = url.replace(f":{svc.ports['http']}/", f":{svc.ports['rtmp']}/")
        path = url.split("/", 3)[3]
        app, _, stream = path.partition("?")[0].rpartition("/")
        recording = garbage.record_publish(app, f"{stream}?{url.partition('?')[2]}",
                                           f"rtmp://127.0.0.1:{svc.ports['rtmp']}/{app}",
                                           flv_tags(sample)[:60])  # fmt: skip

        for channel in channels:
            url = svc.bucket().sign_rtmp_url(channel, "playlist.m3u8", 3600)
            procs.append(publishers.start(publishers.ffmpeg_live(
                url, duration_s=push_s, size=args.size, gop_s=GOP_S, bframes=0)))  # fmt: skip
        print(f"{args.publishers} publishers pushing {push_s:.0f} s each; warm-up {WARMUP_S:.0f} s")
        time.sleep(WARMUP_S)
        # The attacker's process plumbing (queue, its feeder) exists before the baseline, so
        # that the descriptor count measures the service alone.
        mp = multiprocessing.get_context("spawn")
        results: Any = mp.Queue()
        results.put(None)
        results.get()
        gc.collect()
        before = {"rss": rss_bytes(), "fds": open_fds(), "tasks": svc.tasks()}
        fds_before = fd_targets()
        print(f"baseline: RSS {before['rss'] / 2**20:.1f} MiB, {before['fds']} fds, "
              f"{before['tasks']} tasks")  # fmt: skip

        round_s = args.attack_s / args.rounds
        peak_rss = before["rss"]
        rounds_rss: list[int] = []
        tried: Counter[str] = Counter()
        ended: Counter[str] = Counter()
        unclosed: Counter[str] = Counter()
        half_open_max_s = 0.0
        for number in range(1, args.rounds + 1):
            print(f"round {number}: {round_s:.0f} s, {HALF_OPEN} half-open handshakes, "
                  f"{ATTACK_CONCURRENCY} hostile sessions in flight")  # fmt: skip
            attack_args = (svc.ports, round_s, recording, args.seed + number, args.slow_clients)
            attack = mp.Process(target=attacker, args=(*attack_args, results))
            attack.start()
            while attack.is_alive() and results.empty():
                peak_rss = max(peak_rss, rss_bytes())
                attack.join(1.0)
            report = json.loads(results.get(timeout=HANDSHAKE_TIMEOUT_S * 6))
            attack.join(10)
            attack.close()  # its sentinel pipe
            tried.update(report["tried"])
            ended.update(report["ended"])
            unclosed.update(report["unclosed"])
            half_open_max_s = max(half_open_max_s, report["half_open_max_s"])
            time.sleep(COOLDOWN_S)
            gc.collect()
            rounds_rss.append(rss_bytes())
            print(f"  after round {number}: RSS {rounds_rss[-1] / 2**20:.1f} MiB, "
                  f"{open_fds()} fds, {svc.tasks()} tasks")  # fmt: skip
        print(f"pinning: {PIN_CONNECTIONS} connections x {PIN_ROUNDS} chunks of 4 KiB among "
              f"~{PIN_ROUNDS // 4} MB of other traffic each")  # fmt: skip
        pin_before = rss_bytes()
        pin_during, pin_after, pin_problems = pin_round(svc, mp, results)
        problems += pin_problems
        print(f"  RSS {pin_before / 2**20:.1f} MiB -> {pin_during / 2**20:.1f} MiB while held "
              f"-> {pin_after / 2**20:.1f} MiB after (no gc.collect)")  # fmt: skip
        peak_rss = max(peak_rss, pin_during)
        after = {"rss": rss_bytes(), "fds": open_fds(), "tasks": svc.tasks()}

        for proc in procs:
            _, err = proc.communicate(timeout=push_s + 60)
            if proc.returncode != 0:
                problems.append(f"a publisher failed: {err[-500:]}")
        pushed_s = push_s  # ffmpeg -t: the media each publisher sent, all of it
        deadline = time.monotonic() + 30
        while any(svc.call(svc.running.store.live_push(BUCKET, c)) for c in channels):  # type: ignore[union-attr]
            if time.monotonic() > deadline:
                problems.append("a push did not end")
                break
            time.sleep(0.2)

        print(f"\nsessions tried: {sum(tried.values())}")
        for kind, n in tried.most_common():
            print(f"  {n:6d}  {kind}")
        print("how they ended:")
        for kind, n in sorted(ended.items()):
            print(f"  {n:6d}  {kind}")
        print(f"slowest half-open handshake closed by the server after "
              f"{half_open_max_s:.1f} s")  # fmt: skip
        print("service log, by reason (top 20):")
        for reason, n in counter.reasons.most_common(20):
            print(f"  {n:6d}  {reason}")
        print(f"service ERROR lines: {sum(counter.errors.values())}")
        for reason, n in counter.errors.most_common(10):
            print(f"  {n:6d}  {reason}")
        print(
            f"RSS: baseline {before['rss'] / 2**20:.1f} MiB, peak {peak_rss / 2**20:.1f} MiB, "
            "after each round " + ", ".join(f"{r / 2**20:.1f}" for r in rounds_rss) + " MiB"
        )
        print(f"fds: {before['fds']} -> {after['fds']}; asyncio tasks: {before['tasks']} -> "
              f"{after['tasks']}")  # fmt: skip
        print("publishers:")
        for channel in channels:
            problems += check_channel(svc, channel, pushed_s)

        band = max(RSS_BAND_BYTES, int(before["rss"] * RSS_BAND_RATIO))
        if after["rss"] > before["rss"] + band:
            problems.append(
                f"RSS {after['rss'] - before['rss']} bytes above baseline (band {band})"
            )
        if after["fds"] > before["fds"] + FD_SLACK:
            grown = fd_targets() - fds_before
            problems.append(f"descriptors leaked: {before['fds']} -> {after['fds']}: {dict(grown)}")
        if after["tasks"] > before["tasks"] + TASK_SLACK:
            problems.append(f"tasks leaked: {before['tasks']} -> {after['tasks']}")
        if len(rounds_rss) > 1 and rounds_rss[-1] > rounds_rss[0] + ROUND_GROWTH_BYTES:
            problems.append(f"RSS still growing: {rounds_rss[0]} -> {rounds_rss[-1]} bytes")
        for detail, n in unclosed.items():
            problems.append(f"{n} session(s) not closed by the server in time: {detail}")
        if counter.errors:
            problems.append("the service logged errors")
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        svc.stop()
        subprocess.run(["rm", "-rf", str(tmp)], check=False)
    print("\nRESULT:", "PASS" if not problems else "FAIL")
    for problem in problems:
        print("  -", problem)
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main())
