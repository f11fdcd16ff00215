"""deploy/ as far as this machine can check it (it has no container engine; deploy/README.md
says what was not run): the Containerfile's instructions and its HEALTHCHECK command against
a real service, the systemd unit through `systemd-analyze verify`, the compose file's commands
and variables against our real CLI parser and configuration, HAProxy's and Prometheus's
configurations through their own checkers, and the example configurations through
config.load."""

from __future__ import annotations

import ast
import json
import re
import shutil
import socket
import struct
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from livechannel import cli
from livechannel.config import DEFAULT_HTTP_PORT, DEFAULT_RTMP_PORT, Config, Limits, load
from livechannel.ops.health import HEALTHZ_PATH
from livechannel.ops.probe import PROBE_TIMEOUT_S
from livechannel.storage.factory import bucket_policy
from livechannel.storage.s3_config import s3_settings
from tests.support.serve_cli import start_service, stop_service
from tests.support.service import ServiceThread

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
CHECK_TIMEOUT_S = 60
NOTIFY_TIMEOUT_S = 20  # a start on a busy machine takes a few seconds


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- Containerfile -----------------------------------------------------------------------------


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = pending + line, ""
        word, _, rest = line.partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def final_stage(steps: list[tuple[str, str]]) -> list[tuple[str, str]]:
    last_from = max(i for i, (word, _) in enumerate(steps) if word == "FROM")
    return steps[last_from:]


def test_containerfile_builds_in_two_stages_and_runs_unprivileged() -> None:
    steps = instructions(DEPLOY / "container" / "Containerfile")
    froms = [args for word, args in steps if word == "FROM"]
    assert len(froms) >= 2, "multi-stage: wheels built apart from the runtime"
    assert all(re.match(r"python:\$\{PYTHON\}-slim", f) for f in froms), froms
    final = final_stage(steps)
    final_words = [word for word, _ in final]
    runs = " ".join(args for word, args in final if word == "RUN")
    # The runtime installs wheels only: no compiler, no package index, no pip cache.
    assert "pip install" in runs and "--no-index" in runs and "--no-cache-dir" in runs
    for tool in ("gcc", "build-essential", "apt-get install", "python3-dev"):
        assert tool not in runs, tool
    assert any(word == "COPY" and args.startswith("--from=") for word, args in final), (
        "the final stage takes the built wheels from the first"
    )
    # Unprivileged, with its data on a volume, both ports published.
    users = [args for word, args in final if word == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert final_words.index("USER") < final_words.index("ENTRYPOINT")
    assert ("VOLUME", '["/data"]') in final
    env = " ".join(args for word, args in final if word == "ENV")
    assert "LIVECHANNEL_DATA_DIR=/data" in env
    exposed = {int(p) for word, args in final if word == "EXPOSE" for p in args.split()}
    assert exposed == {DEFAULT_RTMP_PORT, DEFAULT_HTTP_PORT}
    # SIGTERM reaches the service itself: exec form, no shell in between.
    assert ("STOPSIGNAL", "SIGTERM") in final
    entrypoint = json.loads(next(args for word, args in final if word == "ENTRYPOINT"))
    command = json.loads(next(args for word, args in final if word == "CMD"))
    assert entrypoint == ["livechannel"]
    cli.parser().parse_args(command)  # a real command of ours (SystemExit otherwise)
    health = next(args for word, args in final if word == "HEALTHCHECK")
    assert HEALTHZ_PATH in health and "--timeout=" in health
    timeout_s = int(re.search(r"--timeout=(\d+)s", health).group(1))  # type: ignore[union-attr]
    assert timeout_s > PROBE_TIMEOUT_S


def healthcheck_command() -> list[str]:
    steps = final_stage(instructions(DEPLOY / "container" / "Containerfile"))
    health = next(args for word, args in steps if word == "HEALTHCHECK")
    command: list[str] = json.loads(health.split("CMD", 1)[1])
    assert command[0] == "python"  # the image's interpreter; here, ours
    return [sys.executable, *command[1:]]


@pytest.mark.parametrize("proxied", [False, True], ids=["direct", "behind-proxy-protocol"])
def test_the_healthcheck_command_follows_the_service(tmp_path: Path, proxied: bool) -> None:
    """The image's HEALTHCHECK, run as the container runs it (only the environment the
    service reads), finds the port and the PROXY protocol setting there, passes while the
    service serves and fails once it stopped."""
    command = healthcheck_command()
    listeners = frozenset({"rtmp", "http"}) if proxied else frozenset()
    svc = ServiceThread(tmp_path / "data", proxy_protocol=listeners).start()
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT),
           "LIVECHANNEL_HTTP_LISTEN": f"0.0.0.0:{svc.http_port}"}  # fmt: skip
    if proxied:
        env["LIVECHANNEL_PROXY_PROTOCOL"] = "true"
    try:
        ok = subprocess.run(command, env=env, capture_output=True, timeout=CHECK_TIMEOUT_S)
        if proxied:  # the service refuses a probe without the header it expects
            bare = {k: v for k, v in env.items() if k != "LIVECHANNEL_PROXY_PROTOCOL"}
            refused = subprocess.run(command, env=bare, capture_output=True,
                                     timeout=CHECK_TIMEOUT_S)  # fmt: skip
            assert refused.returncode == 1, refused.stderr
    finally:
        svc.stop()
    assert ok.returncode == 0, ok.stderr
    down = subprocess.run(command, env=env, capture_output=True, timeout=CHECK_TIMEOUT_S)
    assert down.returncode == 1, down.stderr


# --- systemd -----------------------------------------------------------------------------------


def unit_settings(path: Path) -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        if line and not line.startswith(("#", "[")) and "=" in line:
            key, _, value = line.partition("=")
            settings.setdefault(key.strip(), []).append(value.strip())
    return settings


def test_systemd_unit_is_sandboxed_and_sized() -> None:
    s = unit_settings(DEPLOY / "systemd" / "livechannel.service")
    assert s["Type"] == ["notify"] and s["NotifyAccess"] == ["main"]
    assert s["Restart"] == ["on-failure"]
    assert s["StateDirectory"] == ["livechannel"]
    assert s.get("DynamicUser") == ["yes"] or s.get("User")
    for key, value in (("NoNewPrivileges", "yes"), ("ProtectSystem", "strict"),
                       ("ProtectHome", "yes"), ("PrivateTmp", "yes")):  # fmt: skip
        assert s[key] == [value], key
    # Every connection is a descriptor, and so is each publisher's open segment file.
    assert int(s["LimitNOFILE"][0]) >= 2 * Limits().max_connections
    # SIGTERM's graceful stop (bounded by the server's 10 s) fits in the stop timeout.
    assert int(s["TimeoutStopSec"][0]) > 10
    # Its command line and variables are ours.
    argv = s["ExecStart"][0].split()
    cli.parser().parse_args(argv[1:])
    names = {e.split("=", 1)[0] for e in s["Environment"]}
    assert {n for n in names if n.startswith("LIVECHANNEL_")} <= our_variables()


@pytest.mark.parametrize("workers", [1, 2])
def test_serve_tells_systemd_when_it_serves_and_when_it_stops(tmp_path: Path, workers: int) -> None:
    """Type=notify: READY=1 arrives once the HTTP port answers (with --workers, once every
    worker serves), STOPPING=1 once SIGTERM came; both from the main process
    (the unit's NotifyAccess=main)."""
    address = str(tmp_path / "notify.sock")
    listen = ("--rtmp-listen", f"127.0.0.1:{free_port()}", "--http-listen",
              f"127.0.0.1:{(http_port := free_port())}")  # fmt: skip
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as systemd:
        systemd.bind(address)
        systemd.settimeout(NOTIFY_TIMEOUT_S)
        systemd.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        proc, _ = start_service(tmp_path / "data", {"NOTIFY_SOCKET": address}, "--workers",
                                str(workers), listen=listen)  # fmt: skip
        try:
            ready, sender = receive(systemd)
            assert sender == proc.pid, "systemd takes READY=1 from the main process only"
            assert ready.startswith("READY=1\n") and f"HTTP on port {http_port}" in ready
            with urllib.request.urlopen(f"http://127.0.0.1:{http_port}{HEALTHZ_PATH}") as r:
                assert r.status == 200
        finally:
            out = stop_service(proc)
        assert receive(systemd) == ("STOPPING=1", proc.pid), out


def receive(sock: socket.socket) -> tuple[str, int]:
    """One notification and the PID that sent it (SCM_CREDENTIALS, as systemd reads it)."""
    data, ancillary, _, _ = sock.recvmsg(4096, socket.CMSG_SPACE(12))
    [(level, kind, creds)] = ancillary
    assert (level, kind) == (socket.SOL_SOCKET, socket.SCM_CREDENTIALS)
    return data.decode(), struct.unpack("iII", creds[:12])[0]


def test_systemd_analyze_verify_passes(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip(
            "systemd-analyze is missing (Debian package systemd; scripts/test.sh installs it)"
        )
    # verify checks that ExecStart's program exists: point it at a real livechannel.
    program = tmp_path / "livechannel"
    program.write_text(f'#!/bin/sh\nexec {sys.executable} -m livechannel "$@"\n')
    program.chmod(0o755)
    unit = (DEPLOY / "systemd" / "livechannel.service").read_text()
    assert "/opt/livechannel/bin/livechannel" in unit
    (tmp_path / "livechannel.service").write_text(
        unit.replace("/opt/livechannel/bin/livechannel", str(program))
    )
    r = subprocess.run(
        [analyze, "verify", str(tmp_path / "livechannel.service")],
        capture_output=True, text=True, timeout=CHECK_TIMEOUT_S,
    )  # fmt: skip
    if "Failed to connect to bus" in r.stderr or "Failed to initialize manager" in r.stderr:
        pytest.skip(f"systemd-analyze cannot run here: {r.stderr.strip()}")
    # Unknown keys and bad values are only warnings to systemd: any output fails the check.
    assert r.returncode == 0 and not r.stderr.strip() and not r.stdout.strip(), r.stderr


# --- compose -----------------------------------------------------------------------------------


def our_variables() -> set[str]:
    """The LIVECHANNEL_* variables livechannel.config reads, from its source (not a list
    kept here), and the AWS_* ones the S3 settings read."""
    names: set[str] = set()
    for module in ("config/loading.py", "storage/s3_config.py"):
        tree = ast.parse((ROOT / "livechannel" / module).read_text())
        names |= {
            node.value
            for node in ast.walk(tree)
            if isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and re.fullmatch(r"(LIVECHANNEL|AWS)_[A-Z0-9_]+", node.value)
        }
    return names


def interpolate(value: str, dotenv: dict[str, str]) -> str:
    """Compose's ${VAR}, ${VAR:-default} and ${VAR:?error}, with the values of env.example."""

    def one(m: re.Match[str]) -> str:
        name, op, arg = m.group(1), m.group(2) or "", m.group(3) or ""
        if name in dotenv:
            return dotenv[name]
        assert op != ":?", f"{name} must be set in env.example"
        return arg

    return re.sub(r"\$\{(\w+)(?:(:-|:\?)([^}]*))?\}", one, value).replace("$$", "$")


def dotenv() -> dict[str, str]:
    lines = (DEPLOY / "compose" / "env.example").read_text().splitlines()
    pairs = (ln.split("=", 1) for ln in lines if ln and not ln.startswith("#"))
    return {k.strip(): v.strip() for k, v in pairs}


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((DEPLOY / "compose" / "compose.yaml").read_text())
    return data


def our_nodes(services: dict[str, Any]) -> dict[str, Any]:
    return {
        name: svc
        for name, svc in services.items()
        if svc.get("build", {}).get("dockerfile") == "deploy/container/Containerfile"
    }


def test_compose_has_the_cluster_topology() -> None:
    services = compose()["services"]
    nodes = our_nodes(services)
    assert len(nodes) == 2
    images = {name: svc.get("image", "") for name, svc in services.items()}
    assert images["postgres"].startswith("postgres:")
    assert images["minio"].startswith("minio/minio")
    assert images["haproxy"].startswith("haproxy:")
    assert images["prometheus"].startswith("prom/prometheus")
    assert set(services["haproxy"]["ports"]) == {
        f"{DEFAULT_RTMP_PORT}:{DEFAULT_RTMP_PORT}",
        f"{DEFAULT_HTTP_PORT}:{DEFAULT_HTTP_PORT}",
    }
    scrape = yaml.safe_load((DEPLOY / "compose" / "prometheus.yml").read_text())
    targets = {
        t for job in scrape["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]
    }
    # Each node's own metrics port (--metrics-listen), which HAProxy does not forward.
    metrics = {
        name: load(None, {}, cli.config_flags(cli.parser().parse_args(svc["command"])))
        for name, svc in nodes.items()
    }
    assert targets == {
        f"{name}:{cfg.metrics_listen.port}" for name, cfg in metrics.items() if cfg.metrics_listen
    }
    assert len(targets) == len(nodes)
    haproxy = (DEPLOY / "compose" / "haproxy.cfg").read_text()
    assert haproxy.count(f"option httpchk GET {HEALTHZ_PATH}") == 2
    assert "check-send-proxy" in haproxy
    env_example = dotenv()
    for name, svc in nodes.items():
        # Every server line sends the PROXY header its node expects on that listener.
        env = {k: interpolate(str(v), env_example) for k, v in svc["environment"].items()}
        args = cli.parser().parse_args(svc["command"])
        assert load(None, env, cli.config_flags(args)).proxy_protocol == {"rtmp", "http"}
        for port in (DEFAULT_RTMP_PORT, DEFAULT_HTTP_PORT):
            assert re.search(rf"server {name} {name}:{port} send-proxy", haproxy), (name, port)


def test_compose_nodes_use_only_our_flags_and_variables() -> None:
    """Each node's command goes through our real argument parser, its LIVECHANNEL_* names are
    variables livechannel.config reads, and the whole — mounted config file, environment (with
    env.example's values) and flags — loads as the node would load it."""
    env_example = dotenv()
    known = our_variables()
    for name, svc in our_nodes(compose()["services"]).items():
        args = cli.parser().parse_args(svc["command"])  # SystemExit on a flag we do not have
        env = {k: interpolate(str(v), env_example) for k, v in svc["environment"].items()}
        unknown = {k for k in env if k.startswith(("LIVECHANNEL_", "AWS_"))} - known
        assert not unknown, f"{name}: not variables of ours: {unknown}"
        mounts = dict(
            reversed(v.split(":")[:2]) for v in svc["volumes"] if v.startswith(("./", "../"))
        )
        config_file = DEPLOY / "compose" / mounts[args.config]
        cfg = load(str(config_file), env, cli.config_flags(args))
        assert cfg.node_id == name and cfg.access_keys == {
            env_example["LIVECHANNEL_ACCESS_KEY_ID"]: env_example["LIVECHANNEL_ACCESS_KEY_SECRET"]
        }
        assert cfg.store.startswith("postgresql://") and "@postgres:5432/" in cfg.store
        settings = s3_settings("buckets.storage", dict(cfg.buckets[0].storage), env, None)
        assert settings.endpoint == "http://minio:9000"
        assert settings.access_key_id == env_example["MINIO_ROOT_USER"]


def test_haproxy_accepts_its_configuration() -> None:
    haproxy = shutil.which("haproxy") or "/usr/sbin/haproxy"
    if not Path(haproxy).exists():
        pytest.skip("haproxy is missing (Debian package haproxy; scripts/test.sh installs it)")
    r = subprocess.run([haproxy, "-c", "-f", str(DEPLOY / "compose" / "haproxy.cfg")],
                       capture_output=True, text=True, timeout=CHECK_TIMEOUT_S)  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    # The only warnings: node names that resolve inside the compose network only.
    warnings = [ln for ln in r.stderr.splitlines() if "[WARNING]" in ln]
    assert all("could not resolve address 'node" in ln for ln in warnings), warnings


def test_prometheus_accepts_its_configuration() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is missing (Debian package prometheus; scripts/test.sh installs it)")
    r = subprocess.run([promtool, "check", "config", str(DEPLOY / "compose" / "prometheus.yml")],
                       capture_output=True, text=True, timeout=CHECK_TIMEOUT_S)  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr


# --- example configurations --------------------------------------------------------------------


@pytest.mark.parametrize("name", ["single.toml", "cluster.toml"])
def test_example_configs_load(name: str) -> None:
    cfg = load(str(DEPLOY / "config" / name), {}, {})
    assert cfg != Config()
    for bucket in cfg.buckets:
        assert bucket.acl_configured  # examples pin their ACL
        bucket_policy(bucket)  # public_base_url, retention_hours valid
        if bucket.storage.get("type") == "s3":
            s3_settings("buckets.storage", dict(bucket.storage), {}, None)
    assert cfg.rtmp_listen.port == DEFAULT_RTMP_PORT and cfg.http_listen.port == DEFAULT_HTTP_PORT
