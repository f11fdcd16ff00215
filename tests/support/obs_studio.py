"""OBS Studio 29 headless: Xvfb, a pre-written profile and scene collection, `--startstreaming`.

OBS keeps everything under $XDG_CONFIG_HOME/obs-studio: global.ini (`FirstRun=true` skips the
auto-configuration wizard; [Basic] names the profile and collection), the profile's basic.ini
(Simple output mode, as most users have it) and service.json (a Custom server: our URL up to
the app, the stream key = `<channel>?<signed query>`), and a scene collection with one color
source. With no audio device OBS still encodes a silent AAC track.

OBS's rtmp-services plugin fetches a service list over HTTPS at start-up (compiled in, no
switch); the proxy variables send libcurl to a closed loopback port instead, so nothing leaves
the machine. RTMP itself does not use libcurl. OBS has no command to stop streaming short of
obs-websocket; SIGTERM ends it at once, which the server sees as a dropped connection.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

from tests.interop.loopback import stop
from tests.support.service import BUCKET, ServiceThread

CONNECT_TIMEOUT_S = 30.0  # OBS under Xvfb with software GL starts streaming in 1-3 s
DISPLAY_TIMEOUT_S = 10.0  # Xvfb prints its display number once it accepts clients
CLOSED_PORT_PROXY = "http://127.0.0.1:9"  # discard port: nothing listens, connects fail at once
WIDTH, HEIGHT, FPS = 640, 360, 30
VIDEO_KBPS = 1000
SCENE, SOURCE = "Scene", "Color"
OPAQUE_GREEN_ABGR = 0xFF00FF00  # OBS stores colors as ABGR


def write_config(config_home: Path, profile: str, collection: str, server: str, key: str) -> None:
    root = config_home / "obs-studio"
    profile_dir = root / "basic" / "profiles" / profile
    scenes_dir = root / "basic" / "scenes"
    profile_dir.mkdir(parents=True)
    scenes_dir.mkdir(parents=True)
    (root / "global.ini").write_text(
        "[General]\nFirstRun=true\n"
        f"[Basic]\nProfile={profile}\nProfileDir={profile}\n"
        f"SceneCollection={collection}\nSceneCollectionFile={collection}\n"
    )
    (profile_dir / "basic.ini").write_text(
        f"[General]\nName={profile}\n"
        f"[Video]\nBaseCX={WIDTH}\nBaseCY={HEIGHT}\nOutputCX={WIDTH}\nOutputCY={HEIGHT}\n"
        f"FPSType=0\nFPSCommon={FPS}\n"
        "[Output]\nMode=Simple\n"
        f"[SimpleOutput]\nVBitrate={VIDEO_KBPS}\nABitrate=128\nStreamEncoder=x264\n"
        "Preset=veryfast\n"
        "[Audio]\nSampleRate=44100\nChannelSetup=Stereo\n"
    )
    service = {
        "type": "rtmp_custom",
        "settings": {"server": server, "key": key, "use_auth": False, "bwtest": False},
    }
    (profile_dir / "service.json").write_text(json.dumps(service))
    scenes = {
        "name": collection,
        "current_scene": SCENE,
        "current_program_scene": SCENE,
        "scene_order": [{"name": SCENE}],
        "sources": [
            {"name": SCENE, "id": "scene", "versioned_id": "scene",
             "settings": {"id_counter": 1,
                          "items": [{"name": SOURCE, "id": 1, "visible": True}]}},
            {"name": SOURCE, "id": "color_source", "versioned_id": "color_source_v3",
             "settings": {"color": OPAQUE_GREEN_ABGR, "width": WIDTH, "height": HEIGHT}},
        ],
    }  # fmt: skip
    (scenes_dir / f"{collection}.json").write_text(json.dumps(scenes))


class HeadlessObs:
    """Xvfb on a free display plus OBS streaming to `server` + `key`; stop() ends both by PID."""

    def __init__(
        self, workdir: Path, server: str, key: str, *, trusted_certs: Path | None = None
    ) -> None:
        """`trusted_certs`: a directory of PEM certificates OBS trusts instead of the system's
        (RTMPS to a test certificate): OBS reads /etc/ssl/certs, so it runs in a mount
        namespace of its own where that directory is bind-mounted over it (root only)."""
        self.trusted_certs = trusted_certs
        self.workdir = workdir
        self.config_home = workdir / "config"
        write_config(self.config_home, "P", "C", server, key)
        self.xvfb: subprocess.Popen[bytes] | None = None
        self.obs: subprocess.Popen[bytes] | None = None

    def _start_xvfb(self) -> str:
        read_fd, write_fd = os.pipe()
        try:
            self.xvfb = subprocess.Popen(
                ["Xvfb", "-displayfd", str(write_fd), "-screen", "0", f"{WIDTH}x{HEIGHT}x24",
                 "-nolisten", "tcp"],
                pass_fds=(write_fd,), stdin=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            os.close(write_fd)
            write_fd = -1
            with os.fdopen(read_fd, "rb") as pipe:
                read_fd = -1
                display = pipe.readline().decode().strip()
        finally:
            for fd in (read_fd, write_fd):
                if fd >= 0:
                    os.close(fd)
        if not display.isdigit():
            raise AssertionError(f"Xvfb did not report a display (exit {self.xvfb.poll()})")
        return f":{display}"

    def start(self) -> HeadlessObs:
        display = self._start_xvfb()
        env = dict(
            os.environ,
            DISPLAY=display,
            HOME=str(self.workdir),  # OBS and Qt leave caches and crash reports under $HOME
            XDG_CONFIG_HOME=str(self.config_home),
            LIBGL_ALWAYS_SOFTWARE="1",  # Mesa's llvmpipe: no GPU here
            http_proxy=CLOSED_PORT_PROXY,
            https_proxy=CLOSED_PORT_PROXY,
            HTTPS_PROXY=CLOSED_PORT_PROXY,
            ALL_PROXY=CLOSED_PORT_PROXY,
            no_proxy="",
        )
        cmd = ["obs", "--startstreaming", "--multi", "--profile", "P", "--collection", "C",
               "--disable-missing-files-check"]  # fmt: skip
        if self.trusted_certs is not None:
            # The mount is private to this namespace: the host's trust store is untouched.
            cmd = ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c",
                   'mount --bind "$0" /etc/ssl/certs && exec "$@"', str(self.trusted_certs),
                   *cmd]  # fmt: skip
        with (self.workdir / "obs.log").open("wb") as log:
            self.obs = subprocess.Popen(
                cmd,
                env=env,
                cwd=self.workdir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        return self

    def running(self) -> bool:
        return self.obs is not None and self.obs.poll() is None

    def stop(self) -> None:
        if self.obs is not None:
            stop(self.obs)
        if self.xvfb is not None:
            stop(self.xvfb)

    def log(self) -> str:
        path = self.workdir / "obs.log"
        return path.read_text(errors="replace") if path.exists() else ""


def stream_with_obs(
    service: ServiceThread,
    channel: str,
    url: str,
    workdir: Path,
    stream_s: float,
    *,
    trusted_certs: Path | None = None,
) -> None:
    """OBS streams to `url` until `channel` is live, then `stream_s` seconds more, and must
    still be streaming then; stopped by PID whatever happens. The URL is split as users paste
    it: OBS's "Server" field takes it up to the app, "Stream Key" the rest."""
    server, _, key = url.rpartition("/")
    obs = HeadlessObs(workdir, server, key, trusted_certs=trusted_certs).start()
    try:
        deadline = time.monotonic() + CONNECT_TIMEOUT_S
        while service.call(service.store.live_push(BUCKET, channel)) is None:
            assert obs.running(), obs.log()[-3000:]
            assert time.monotonic() < deadline, obs.log()[-3000:]
            time.sleep(0.2)
        time.sleep(stream_s)
        assert obs.running(), obs.log()[-3000:]
    finally:
        obs.stop()
