"""A clean install, as a new user makes it: build the wheel, install it into a new virtual
environment with no extras, start `livechannel serve` from there with its defaults (only the
ports moved to free ones), publish with the ffmpeg CLI to the URL it prints and play the play
URL it prints with ffprobe. `pip install . && livechannel serve` once crashed on an import
that only the test extra provided; this is the test that catches it.

Inside that environment every module of the package is imported too (each import of the
service is covered by the runtime dependencies alone), and `pip check` confirms the installed
metadata's requirements are met. pip downloads what its cache lacks from the configured index
once into a wheelhouse (WHEELHOUSE); later runs install from it offline.
"""

from __future__ import annotations

import os
import shlex
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit
from urllib.request import urlopen

import pytest

from livechannel.firstrun import own_address
from tests.support.serve_cli import start_service, stop_service

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
BUILD_TIMEOUT_S = 180  # a cold pip cache downloads the build backend
INSTALL_TIMEOUT_S = 300  # ... and the runtime dependencies (PyAV's wheel is ~30 MB)
PUSH_TIMEOUT_S = 60
# The dependencies' wheels, kept between runs: installing from them offline (as the
# Containerfile's final stage does) takes a third of the time of resolving against the index.
WHEELHOUSE = Path.home() / ".cache" / "livechannel-tests" / "wheels"
IMPORT_ALL = """
import importlib, pkgutil, livechannel
names = [m.name for m in pkgutil.walk_packages(livechannel.__path__, "livechannel.")
         if not m.name.endswith(".__main__")]  # that one runs the CLI
for name in names:
    importlib.import_module(name)
assert livechannel.__file__.startswith(__import__("sys").prefix), livechannel.__file__
print(len(names))
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run(cmd: list[str], timeout_s: float, **kwargs: object) -> str:
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, **kwargs)  # type: ignore[call-overload]
    assert r.returncode == 0, f"{shlex.join(cmd)}:\n{r.stdout}\n{r.stderr}"
    return str(r.stdout)


def data_files(package: Path) -> set[str]:
    return {
        str(p.relative_to(package))
        for p in package.rglob("*")
        if p.is_file() and p.suffix not in (".py", ".pyc") and "__pycache__" not in p.parts
    }


def build_wheel(tmp: Path) -> Path:
    """The wheel of this tree, built from a copy (no build/ left in the tree, nothing stale)."""
    src = tmp / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "livechannel", src / "livechannel",
                    ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
    dist = tmp / "dist"
    run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(dist),
         str(src)], BUILD_TIMEOUT_S)  # fmt: skip
    [wheel] = dist.glob("livechannel-*.whl")
    return wheel


def test_the_wheel_installs_serves_and_streams(tmp_path: Path) -> None:
    started = time.monotonic()
    wheel = build_wheel(tmp_path)
    print(f"wheel built in {time.monotonic() - started:.1f} s")
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", str(venv)], 60)
    python = venv / "bin" / "python"
    # The system's pip installs into the new environment: no extras, runtime dependencies only.
    pip = [sys.executable, "-m", "pip", "--python", str(python)]
    # Without PYTHONPATH: this tree on it would look installed already.
    pip_env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    install_offline = [*pip, "install", "--quiet", "--no-index", "--find-links", str(WHEELHOUSE),
                       str(wheel)]  # fmt: skip
    offline = subprocess.run(install_offline, capture_output=True, timeout=INSTALL_TIMEOUT_S,
                             env=pip_env)  # fmt: skip
    if offline.returncode != 0:  # first run, or a dependency changed: fill the wheelhouse
        run([sys.executable, "-m", "pip", "wheel", "--quiet", "--wheel-dir", str(WHEELHOUSE),
             str(wheel)], INSTALL_TIMEOUT_S, env=pip_env)  # fmt: skip
        for ours in WHEELHOUSE.glob("livechannel-*.whl"):
            ours.unlink()
        run(install_offline, INSTALL_TIMEOUT_S, env=pip_env)
    run([*pip, "check"], 60, env=pip_env)
    print(f"installed after {time.monotonic() - started:.1f} s")
    clean_env = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": str(tmp_path)}
    imported = run([str(python), "-c", IMPORT_ALL], 120, env=clean_env, cwd=tmp_path)
    assert int(imported) > 50
    # Every file of the package that is not code (the console's pages and scripts...) was
    # packaged too: package-data forgotten would ship a console without its files.
    [installed] = venv.glob("lib/python*/site-packages/livechannel")
    assert data_files(installed) == data_files(ROOT / "livechannel")
    [dist_info] = venv.glob("lib/python*/site-packages/livechannel-*.dist-info")
    assert "Apache License" in next(dist_info.rglob("LICENSE*")).read_text()

    rtmp_port, http_port = free_port(), free_port()
    proc, banner = start_service(
        tmp_path / "data",
        clean_env,
        command=[str(venv / "bin" / "livechannel")],
        listen=("--rtmp-listen", f"0.0.0.0:{rtmp_port}", "--http-listen", f"0.0.0.0:{http_port}"),
        inherit_env=False,
        cwd=tmp_path,
    )
    try:
        lines = banner.splitlines()
        push = shlex.split(next(ln for ln in lines if ln.strip().startswith("ffmpeg -re -f lavfi")))
        url = push[-1]
        assert url.startswith("rtmp://") and f":{rtmp_port}/live/live/demo?" in url, url
        # Listening on all addresses: the URL carries this machine's own address.
        assert urlsplit(url).hostname == (own_address() or "127.0.0.1"), url
        # The printed command, as printed, bounded to 4 s of a small picture.
        i = push.index("testsrc2=size=1280x720:rate=30")
        push[i] = "testsrc2=size=320x180:rate=30:duration=4"
        push[push.index("sine=frequency=440")] = "sine=frequency=440:duration=4"
        r = subprocess.run([*push[:1], "-loglevel", "error", *push[1:]], capture_output=True,
                           text=True, timeout=PUSH_TIMEOUT_S)  # fmt: skip
        assert r.returncode == 0, r.stderr
        play = shlex.split(next(ln for ln in lines if ln.strip().startswith("ffplay ")))[1]
        assert f":{http_port}/live/demo/playlist.m3u8?" in play
        probe = subprocess.run(
            ["ffprobe", "-v", "error", "-show_entries", "stream=codec_name", "-of", "csv=p=0",
             play], capture_output=True, text=True, timeout=PUSH_TIMEOUT_S,
        )  # fmt: skip
        assert probe.returncode == 0, probe.stderr
        assert set(probe.stdout.split()) == {"aac", "h264"}
        # The browser console's files came with the wheel (package data), hls.js among them.
        console = next(ln for ln in lines if ln.strip().startswith("console")).split()[1]
        for name in ("", "static/hls.min.js", "static/hls.js-LICENSE.txt"):
            with urlopen(console + name, timeout=PUSH_TIMEOUT_S) as answer:
                body = answer.read()
            assert body == (ROOT / "livechannel/console/static" / (name[7:] or "index.html")
                            ).read_bytes(), name  # fmt: skip
    finally:
        stop_service(proc)
