"""RTMPS: the TLS side of the RTMP edge (RTMP itself is unchanged inside TLS).

TLS 1.2 or newer (what OBS, ffmpeg and browsers' stacks negotiate; 1.0/1.1 are deprecated,
RFC 8996). The certificate and key are PEM files re-read on SIGHUP: a new pair is first
loaded into a scratch context, so a half-written or mismatched pair is refused (logged) and
the running one stays; a good pair is then loaded into the listening context, which only
handshakes after that use. Connections already up keep the session they negotiated:
publishers are never dropped by a reload.

TLS on the shared HTTP port is not offered: the first bytes there decide RTMP or HTTP
(ingest/sniff.py), and a TLS ClientHello would need the TLS layer under both, i.e. a
second, different server; terminate HTTPS in a proxy in front (README, "RTMPS").
"""

from __future__ import annotations

import logging
import ssl

log = logging.getLogger("livechannel.tls")

MIN_TLS_VERSION = ssl.TLSVersion.TLSv1_2


class TlsError(Exception):
    """The certificate or key cannot be used; the message names the file and the reason."""


def _context(cert_path: str, key_path: str) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = MIN_TLS_VERSION
    _load(context, cert_path, key_path)
    return context


def _load(context: ssl.SSLContext, cert_path: str, key_path: str) -> None:
    try:
        context.load_cert_chain(cert_path, key_path)
    except (OSError, ssl.SSLError) as e:
        raise TlsError(f"TLS certificate {cert_path} / key {key_path}: {e}") from None


class ServerTls:
    """The RTMPS listener's SSL context, reloadable in place."""

    def __init__(self, cert_path: str, key_path: str) -> None:
        self.cert_path, self.key_path = cert_path, key_path
        self.context = _context(cert_path, key_path)  # raises TlsError at start-up
        self.reloads = 0

    def reload(self) -> bool:
        """Re-read the files (SIGHUP). False, and the old certificate stays, if they fail."""
        try:
            _context(self.cert_path, self.key_path)  # the whole pair checks out first
            _load(self.context, self.cert_path, self.key_path)
        except TlsError as e:
            log.error("TLS reload refused, the old certificate stays: %s", e)
            return False
        self.reloads += 1
        log.info("TLS certificate reloaded from %s", self.cert_path)
        return True
