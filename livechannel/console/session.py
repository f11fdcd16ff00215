"""Console sessions: signed, short-lived tokens in an HttpOnly cookie. Sans-IO (`now_ms` is
an argument).

Sign-in checks an access key id and secret once; the browser then holds only a token:

    token = b64url(key_id "\\n" issued_ms "\\n" expires_ms "\\n" nonce) "." b64url(mac)
    mac   = HMAC-SHA256(session key, payload)
    session key = HMAC-SHA256(the key's secret, SESSION_KEY_LABEL)

The token is stateless, so it works on every worker and node of a deployment (they share the
access keys, not memory) and survives a restart; rotating or removing the access key ends
every session made with it. A session expires SESSION_IDLE_S after its last renewal (each
request renews a token past half its life) and at most MAX_SESSION_AGE_S after sign-in.
Sign-out revokes the token's nonce in the process that receives it and deletes the cookie;
see docs/console.md for what that means with several workers.

The CSRF token is derived from the session (key id, sign-in time and nonce, not the expiry,
so it stays the same across renewals); the page reads it once and sends it in a header with
every change. A cross-site page can neither read it nor make the browser send the cookie
(SameSite=Strict).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass

SESSION_KEY_LABEL = b"livechannel console session v1"
# Even a console kept busy (a wall display) signs in again after this.
MAX_SESSION_AGE_S = 12 * 3600
NONCE_BYTES = 16  # 128 random bits: tokens never collide, and none can be guessed
# Tokens are ~150 bytes; a longer cookie value is not ours and is not parsed.
MAX_TOKEN_CHARS = 512
# Sign-outs remembered until their token expires; beyond this the oldest is forgotten (it
# would expire within the idle time anyway).
MAX_REVOKED = 10_000


@dataclass(frozen=True, slots=True)
class Session:
    key_id: str
    issued_ms: int
    expires_ms: int
    nonce: str


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _session_key(secret: str) -> bytes:
    return hmac.new(secret.encode(), SESSION_KEY_LABEL, hashlib.sha256).digest()


def _payload(session: Session) -> bytes:
    fields = (session.key_id, str(session.issued_ms), str(session.expires_ms), session.nonce)
    return "\n".join(fields).encode()


def check_secret(credentials: Mapping[str, str], key_id: str, secret: str) -> bool:
    """Constant-time in the secret; an unknown key id compares against a dummy."""
    known = credentials.get(key_id)
    candidate = secret.encode()
    expected = (known if known is not None else secrets.token_hex(16)).encode()
    return hmac.compare_digest(candidate, expected) and known is not None


class Sessions:
    """Mints and checks tokens against the service's access keys."""

    def __init__(self, credentials: Mapping[str, str], idle_s: float) -> None:
        self.credentials = credentials
        self.idle_ms = int(idle_s * 1000)
        self._revoked: dict[str, int] = {}  # nonce -> when its token would expire anyway

    def sign_in(self, key_id: str, now_ms: int) -> tuple[Session, str]:
        session = Session(key_id, now_ms, now_ms + self.idle_ms, secrets.token_hex(NONCE_BYTES))
        return session, self.token(session)

    def token(self, session: Session) -> str:
        payload = _payload(session)
        mac = hmac.new(_session_key(self.credentials[session.key_id]), payload, hashlib.sha256)
        return f"{_b64(payload)}.{_b64(mac.digest())}"

    def check(self, token: str, now_ms: int) -> Session | None:
        """The session a cookie value stands for, or None: malformed, forged, expired,
        too old, signed out, or made with a key that no longer exists."""
        if not token or len(token) > MAX_TOKEN_CHARS or token.count(".") != 1:
            return None
        payload_text, mac_text = token.split(".")
        try:
            payload, mac = _unb64(payload_text), _unb64(mac_text)
            key_id, issued, expires, nonce = payload.decode().split("\n")
            session = Session(key_id, int(issued), int(expires), nonce)
        except (ValueError, binascii.Error, UnicodeDecodeError):
            return None
        secret = self.credentials.get(key_id)
        if secret is None:
            return None
        expected = hmac.new(_session_key(secret), payload, hashlib.sha256).digest()
        if not hmac.compare_digest(expected, mac) or _payload(session) != payload:
            return None
        if now_ms >= session.expires_ms or now_ms - session.issued_ms >= MAX_SESSION_AGE_S * 1000:
            return None
        if session.nonce in self._revoked:
            return None
        return session

    def renewed(self, session: Session, now_ms: int) -> Session | None:
        """A later-expiring copy once half the idle time has passed (None: keep the token)."""
        if session.expires_ms - now_ms > self.idle_ms // 2:
            return None
        latest = session.issued_ms + MAX_SESSION_AGE_S * 1000
        expires_ms = min(now_ms + self.idle_ms, latest)
        if expires_ms <= session.expires_ms:
            return None
        return Session(session.key_id, session.issued_ms, expires_ms, session.nonce)

    def csrf_token(self, session: Session) -> str:
        stable = f"csrf\n{session.key_id}\n{session.issued_ms}\n{session.nonce}".encode()
        mac = hmac.new(_session_key(self.credentials[session.key_id]), stable, hashlib.sha256)
        return _b64(mac.digest())

    def csrf_ok(self, session: Session, provided: str | None) -> bool:
        return provided is not None and hmac.compare_digest(
            self.csrf_token(session).encode(), provided.encode()
        )

    def sign_out(self, session: Session, now_ms: int) -> None:
        self._revoked = {n: exp for n, exp in self._revoked.items() if exp > now_ms}
        while len(self._revoked) >= MAX_REVOKED:
            del self._revoked[min(self._revoked, key=self._revoked.__getitem__)]
        latest = session.issued_ms + MAX_SESSION_AGE_S * 1000
        self._revoked[session.nonce] = latest


# Wrong sign-ins one address may make in SIGN_IN_WINDOW_S before it must wait: a person
# mistyping needs a few; a script guessing secrets is slowed to a crawl.
MAX_SIGN_IN_FAILURES = 10
SIGN_IN_WINDOW_S = 300
# Addresses remembered at once (a few hundred bytes each); past it the oldest is forgotten.
MAX_TRACKED_ADDRESSES = 10_000


class SignInThrottle:
    """Per client address, at most MAX_SIGN_IN_FAILURES failed sign-ins per window (in this
    process; each worker counts its own)."""

    def __init__(self) -> None:
        self._failures: dict[str, deque[int]] = {}

    def _recent(self, address: str, now_ms: int) -> deque[int]:
        times = self._failures.get(address, deque())
        while times and times[0] <= now_ms - SIGN_IN_WINDOW_S * 1000:
            times.popleft()
        return times

    def allowed(self, address: str, now_ms: int) -> bool:
        return len(self._recent(address, now_ms)) < MAX_SIGN_IN_FAILURES

    def failed(self, address: str, now_ms: int) -> None:
        times = self._recent(address, now_ms)
        times.append(now_ms)
        self._failures.pop(address, None)
        self._failures[address] = times  # most recent last: the oldest go first when full
        while len(self._failures) > MAX_TRACKED_ADDRESSES:
            del self._failures[next(iter(self._failures))]
