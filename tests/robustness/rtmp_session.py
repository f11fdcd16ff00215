"""A blocking RTMP publisher for robustness tests: our sans-IO `ClientConnection` on a plain
socket, so a test can publish, send exactly the tags (or garbage) it wants, stop sending
while keeping the socket open, and read what the server answers.

Every wait has a deadline; the socket is closed by `close()` (or the context manager).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import urlsplit

from livechannel.media.flv import TAG_TYPE_AUDIO, TAG_TYPE_VIDEO, iter_flv_tags
from livechannel.rtmp.client import ClientConnection, ErrorReceived, StatusReceived
from livechannel.rtmp.errors import RtmpError
from livechannel.rtmp.messages import MessageType
from tests.support.service import ServiceThread

IO_TIMEOUT_S = 10.0  # loopback: every answer comes in milliseconds
SEND_TIMEOUT_S = 30.0  # a server applying backpressure may hold a send this long
READ_BYTES = 64 * 1024

Tag = tuple[int, int, bytes]  # FLV tag type, timestamp ms, body


def flv_tags(path: Path) -> list[Tag]:
    return [(t, ts, body) for t, ts, body in iter_flv_tags(path.read_bytes())
            if t in (TAG_TYPE_AUDIO, TAG_TYPE_VIDEO)]  # fmt: skip


class RtmpSession:
    def __init__(self, port: int, app: str, stream: str, *, tc_url: str | None = None,
                 host: str = "127.0.0.1", source_ip: str | None = None,
                 chunk_size: int = 4096, sndbuf: int | None = None) -> None:  # fmt: skip
        self.client = ClientConnection(
            app, stream, tc_url or f"rtmp://{host}:{port}/{app}", chunk_size=chunk_size
        )
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.settimeout(IO_TIMEOUT_S)
        if source_ip is not None:
            self.sock.bind((source_ip, 0))
        if sndbuf is not None:  # small: a server that stops reading blocks us quickly
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
        self.sock.connect((host, port))
        self.statuses: list[StatusReceived] = []
        self.errors: list[ErrorReceived] = []
        self.closed_by_server = False
        self.bytes_sent = 0

    def __enter__(self) -> RtmpSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.sock.close()

    def _read_once(self, timeout_s: float) -> bool:
        """Read what has arrived; False once the server has closed the connection."""
        self.sock.settimeout(timeout_s)
        try:
            data = self.sock.recv(READ_BYTES)
        except TimeoutError:
            return True
        except OSError:
            data = b""
        if not data:
            self.closed_by_server = True
            return False
        try:
            self.client.receive_data(data)
        except RtmpError:
            self.closed_by_server = True
            return False
        while (event := self.client.next_event()) is not None:
            if isinstance(event, StatusReceived):
                self.statuses.append(event)
            elif isinstance(event, ErrorReceived):
                self.errors.append(event)
        self._flush()
        return True

    def _flush(self) -> None:
        data = self.client.data_to_send()
        if data:
            try:
                self.sock.settimeout(SEND_TIMEOUT_S)
                self.sock.sendall(data)
            except OSError:
                self.closed_by_server = True
            else:
                self.bytes_sent += len(data)

    def publish(self) -> StatusReceived:
        """Handshake, connect, createStream, publish; the first onStatus that answers it."""
        self.client.initiate()
        self._flush()
        deadline = time.monotonic() + IO_TIMEOUT_S
        while not self.statuses and time.monotonic() < deadline:
            if not self._read_once(0.2):
                break
        if not self.statuses:
            raise AssertionError(f"no onStatus for the publish (closed: {self.closed_by_server})")
        return self.statuses[0]

    def send(self, tags: Iterable[Tag], *, pace: float = 0.0) -> None:
        """Send media tags; `pace` > 0 sends in real time scaled by it (1.0 = real time)."""
        start = time.monotonic()
        first_ts: int | None = None
        for kind, ts, body in tags:
            if pace > 0:
                first_ts = ts if first_ts is None else first_ts
                delay = (ts - first_ts) / 1000 / pace - (time.monotonic() - start)
                if delay > 0:
                    time.sleep(delay)
            type_id = MessageType.VIDEO if kind == TAG_TYPE_VIDEO else MessageType.AUDIO
            self.client.send_message(type_id, ts, body, csid=6 if kind == TAG_TYPE_VIDEO else 4)
            self._flush()
            if self.closed_by_server:
                return
        self._read_once(0.01)

    def send_raw(self, data: bytes) -> None:
        try:
            self.sock.sendall(data)
        except OSError:
            self.closed_by_server = True

    def wait_closed(self, timeout_s: float = IO_TIMEOUT_S) -> float:
        """Seconds until the server closed the connection (AssertionError if it did not)."""
        start = time.monotonic()
        while time.monotonic() - start < timeout_s:
            if not self._read_once(0.1):
                return time.monotonic() - start
        raise AssertionError(f"the server kept the connection open for {timeout_s} s")

    def error_status(self) -> StatusReceived | None:
        return next((s for s in self.statuses if s.level == "error"), None)


def server_closes(sock: socket.socket, timeout_s: float) -> bool:
    """Whether the peer closes `sock` within `timeout_s` (reads and discards anything sent)."""
    deadline = time.monotonic() + timeout_s
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            if not sock.recv(READ_BYTES):
                return True
        except TimeoutError:
            return False
        except OSError:
            return True
    return False


def url_parts(url: str) -> tuple[int, str, str, str]:
    """(port, app, stream name with query, tcUrl) of an RTMP URL, split as libavformat does."""
    parts = urlsplit(url)
    app, _, stream = parts.path.lstrip("/").rpartition("/")
    if parts.query:
        stream += "?" + parts.query
    assert parts.port is not None
    return parts.port, app, stream, f"rtmp://{parts.netloc}/{app}"


def session_for(svc: ServiceThread, channel: str, **kw: object) -> RtmpSession:
    """A session that will publish `channel` with oss2's signed URL (the RTMP port)."""
    port, app, stream, tc_url = url_parts(svc.signed_publish_url(channel, rtmp_port=True))
    return RtmpSession(port, app, stream, tc_url=tc_url, **kw)  # type: ignore[arg-type]
