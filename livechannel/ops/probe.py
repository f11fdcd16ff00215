"""`python -m livechannel.ops.probe [PATH]`: the container image's HEALTHCHECK.

GETs `PATH` (default /-/healthz) from the service on this host and exits 0 on a 200, 1
otherwise. The port, and whether the HTTP listener expects a PROXY protocol header first,
come from the same environment the service reads (LIVECHANNEL_HTTP_LISTEN,
LIVECHANNEL_PROXY_PROTOCOL): behind a balancer that sends the header, the service refuses a
connection without one, so the probe sends `PROXY UNKNOWN` (the balancer's own health check
form: the connection's address stands). No HTTP library: a health check imports little.
"""

from __future__ import annotations

import os
import socket
import sys

from livechannel.config import WILDCARD_HOSTS, ConfigError, load

PROBE_TIMEOUT_S = 4.0  # below the image's HEALTHCHECK --timeout
MAX_STATUS_LINE_BYTES = 1024


def probe(path: str = "/-/healthz") -> bool:
    cfg = load(None, os.environ, {})
    host = cfg.http_listen.host
    host = ("::1" if ":" in host else "127.0.0.1") if host in WILDCARD_HOSTS else host
    request = f"GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n".encode()
    if "http" in cfg.proxy_protocol:
        request = b"PROXY UNKNOWN\r\n" + request
    try:
        with socket.create_connection((host, cfg.http_listen.port), PROBE_TIMEOUT_S) as s:
            s.sendall(request)
            status_line = s.makefile("rb").readline(MAX_STATUS_LINE_BYTES)
    except OSError:
        return False
    return status_line.split(b" ")[1:2] == [b"200"]


def main(argv: list[str]) -> int:
    try:
        return 0 if probe(*argv[1:2]) else 1
    except ConfigError as e:
        print(f"livechannel probe: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
