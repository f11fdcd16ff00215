"""systemd's readiness protocol (sd_notify(3)): `Type=notify` units learn when the service
serves and when it stops.

`NOTIFY_SOCKET` names a Unix datagram socket (a path, or `@name` in the abstract namespace);
each message is newline-separated `KEY=value` assignments. Without the variable (no systemd,
a container) nothing is sent. A failed send is logged and ignored: notification must never
stop the service.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping

log = logging.getLogger("livechannel.ops.sdnotify")


def notify(message: str, env: Mapping[str, str] = os.environ) -> bool:
    """Send `message` (e.g. "READY=1") if systemd asked for notifications; True if sent."""
    target = env.get("NOTIFY_SOCKET", "")
    if not target:
        return False
    address = "\0" + target[1:] if target.startswith("@") else target
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
            s.sendto(message.encode(), address)
    except OSError as e:
        log.warning("could not notify systemd at %s: %s", target, e)
        return False
    return True
