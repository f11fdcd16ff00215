"""RTMP handshake (RTMP spec 1.0 §5.2): C0/C1/C2 and S0/S1/S2 packets.

The server always answers in the simple form, whatever C1 looks like: S1 = 4-byte time,
4 zero bytes, random; S2 = C1 echoed. Zero version bytes in S1 make libavformat skip digest
validation (its handshake only checks digests when S1 byte 5 is >= 3), and every real client
accepts this answer (docs/rtmp-clients.md). C2 is never validated: clients send an exact echo
of S1, an echo with bytes 4-7 rewritten, or a real digest response.

The digest-style C1 (what ffmpeg and nginx-rtmp send) is built here for our own test client,
following the widely documented "scheme 0" layout: a non-zero version, and an HMAC-SHA256
digest keyed with the Flash Player key, stored at an offset derived from bytes 8-11.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from typing import Final

from livechannel.rtmp.errors import LocalProtocolError, ProtocolError

RTMP_VERSION = 3  # C0/S0: the only version in the spec; 6 was RTMPE, others are garbage
HANDSHAKE_SIZE = 1536  # C1/S1/C2/S2 length (§5.2.3)
HANDSHAKE_RANDOM_SIZE = HANDSHAKE_SIZE - 8  # C1/S1 after time (4) and zero/version (4)
_U32: Final = struct.Struct(">I")

# Version bytes of a digest-style C1, as libavformat sends them (docs/rtmp-clients.md).
DIGEST_CLIENT_VERSION: Final = bytes((9, 0, 124, 2))
# "Genuine Adobe Flash Player 001": the public key prefix a client digest is keyed with.
CLIENT_DIGEST_KEY: Final = b"Genuine Adobe Flash Player 001"
_DIGEST_SIZE = 32  # HMAC-SHA256 output
_DIGEST_OFFSET_BASE = 12  # scheme 0: offset counted from byte 12 of C1
_DIGEST_OFFSET_MODULO = 728  # scheme 0: 764-byte block minus offset field and digest


def check_c0(version: int) -> None:
    """Refuse anything but plain RTMP (no RTMPE, no HTTP sent to the RTMP port)."""
    if version != RTMP_VERSION:
        raise ProtocolError(f"unsupported RTMP version {version} in C0 (expected 3)")


def server_reply(c1: bytes, *, time_ms: int, random: bytes) -> bytes:
    """S0 + S1 + S2 for a client's C1, sent in one write."""
    if len(c1) != HANDSHAKE_SIZE or len(random) != HANDSHAKE_RANDOM_SIZE:
        raise LocalProtocolError("C1 must be 1536 bytes and random 1528 bytes")
    s1 = _U32.pack(time_ms & 0xFFFFFFFF) + bytes(4) + random
    return bytes((RTMP_VERSION,)) + s1 + c1


def _digest_offset(packet: bytes) -> int:
    return sum(packet[8:12]) % _DIGEST_OFFSET_MODULO + _DIGEST_OFFSET_BASE


def _digest(packet: bytes, offset: int) -> bytes:
    message = packet[:offset] + packet[offset + _DIGEST_SIZE :]
    return hmac.new(CLIENT_DIGEST_KEY, message, hashlib.sha256).digest()


def client_c0_c1(*, style: str, time_ms: int, random: bytes) -> bytes:
    """C0 + C1. `style` is "simple" (zero version, like OBS and GStreamer) or "digest"
    (a scheme-0 digest C1 like ffmpeg's)."""
    if len(random) != HANDSHAKE_RANDOM_SIZE:
        raise LocalProtocolError("random must be 1528 bytes")
    head = _U32.pack(time_ms & 0xFFFFFFFF)
    if style == "simple":
        c1 = head + bytes(4) + random
    elif style == "digest":
        body = head + DIGEST_CLIENT_VERSION + random
        offset = _digest_offset(body)
        c1 = body[:offset] + _digest(body, offset) + body[offset + _DIGEST_SIZE :]
    else:
        raise LocalProtocolError(f"unknown handshake style {style!r}")
    return bytes((RTMP_VERSION,)) + c1


def has_client_digest(c1: bytes) -> bool:
    """Whether C1 carries a valid scheme-0 client digest (used by tests, never by the server:
    the server answers every C1 the same way)."""
    if len(c1) != HANDSHAKE_SIZE:
        return False
    offset = _digest_offset(c1)
    return hmac.compare_digest(c1[offset : offset + _DIGEST_SIZE], _digest(c1, offset))


def client_c2(s1: bytes) -> bytes:
    """C2 as libavformat sends it to a zero-version server: S1 echoed."""
    if len(s1) != HANDSHAKE_SIZE:
        raise LocalProtocolError("S1 must be 1536 bytes")
    return bytes(s1)
