"""nginx-rtmp as a `push` relay in front of us: its own config, pid and logs in a temp dir.

nginx-rtmp splits a push URL's path at its first `/`: the first element is the RTMP app, the
rest (query included, verbatim) is the stream name. oss2's path-style URL
`.../<bucket>/live/<channel>?...` arrives as app `<bucket>`, name `live/<channel>?...`, which
the service resolves from the whole path. The directive's own `app=`, `playPath=` and `tcUrl=`
parameters override nginx's split and its tcUrl (the host nginx connects to is always
127.0.0.1 here; a virtual-host URL's name reaches us only through `tcUrl=`).
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.interop.loopback import free_port, stop, wait_for_port

MODULE = "/usr/lib/nginx/modules/ngx_rtmp_module.so"  # Debian's libnginx-mod-rtmp
RELAY_APP = "relay"  # what the upstream encoder publishes into
START_TIMEOUT_S = 10.0
PUSH_RECONNECT = "1s"  # nginx-rtmp's default is 3 s; retries after a refusal come sooner


@dataclass(frozen=True)
class PushTarget:
    url: str  # scheme, host, port and, unless app/play_path are set, the path
    app: str = ""
    play_path: str = ""
    tc_url: str = ""

    def directive(self) -> str:
        # Whole tokens quoted: nginx strips the quotes, while `key="v"` would keep them in v.
        extra = ""
        if self.app:
            extra += f' "app={self.app}"'
        if self.play_path:
            extra += f' "playPath={self.play_path}"'
        if self.tc_url:
            extra += f' "tcUrl={self.tc_url}"'
        return f'push "{self.url}"{extra};'


def config(workdir: Path, port: int, target: PushTarget) -> str:
    return f"""
load_module {MODULE};
daemon off;
master_process on;
worker_processes 1;
pid {workdir}/nginx.pid;
error_log {workdir}/error.log info;
events {{ worker_connections 64; }}
rtmp {{
    access_log {workdir}/rtmp_access.log;
    server {{
        listen 127.0.0.1:{port};
        application {RELAY_APP} {{
            live on;
            push_reconnect {PUSH_RECONNECT};
            {target.directive()}
        }}
    }}
}}
"""


class NginxRelay:
    def __init__(self, workdir: Path, target: PushTarget) -> None:
        self.workdir = workdir
        self.port = free_port()
        workdir.mkdir(parents=True, exist_ok=True)
        self.conf = workdir / "nginx.conf"
        self.conf.write_text(config(workdir, self.port, target))
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def publish_url(self) -> str:
        """Where the upstream encoder publishes; nginx pushes whatever arrives to us."""
        return f"rtmp://127.0.0.1:{self.port}/{RELAY_APP}/src"

    def start(self) -> NginxRelay:
        # -e: the error log before the config is read (Debian's default is /var/log/nginx)
        cmd = ["nginx", "-p", str(self.workdir), "-e", str(self.workdir / "error.log"),
               "-c", str(self.conf)]  # fmt: skip
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL)
        wait_for_port(self.port, START_TIMEOUT_S, self.proc)
        return self

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc)  # SIGTERM to the master by PID: it stops its worker and exits

    def log(self) -> str:
        path = self.workdir / "error.log"
        return path.read_text(errors="replace") if path.exists() else ""
