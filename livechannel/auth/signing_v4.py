"""OSS V4 signatures (OSS4-HMAC-SHA256). Sans-IO: no clock, no sockets; times are arguments.

Alibaba Cloud OSS documentation, "Include a V4 signature in the Authorization header" and
"V4 signatures in presigned URLs", as oss2 2.19 (`oss2.ProviderAuthV4`) implements them:

  CanonicalRequest = VERB \\n CanonicalURI \\n CanonicalQuery \\n CanonicalHeaders \\n
                     AdditionalHeaders \\n HashedPayload
  StringToSign     = "OSS4-HMAC-SHA256" \\n <x-oss-date> \\n <scope> \\n
                     hex(sha256(CanonicalRequest))
  scope            = <yyyymmdd>/<region>/oss/aliyun_v4_request
  SigningKey       = HMAC chain over "aliyun_v4" + secret: date, region, "oss", "aliyun_v4_request"
  Signature        = hex(hmac-sha256(SigningKey, StringToSign))

Unlike V1, every query parameter is signed (not only sub-resources), each name and value
URI-encoded (RFC 3986 unreserved kept, `/` encoded); the URI is `/<bucket>/<key>` encoded with
`/` kept; signed headers are every `x-oss-*`, Content-Type and Content-MD5, plus those the
client lists in AdditionalHeaders.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from livechannel.errors import InvalidArgument

ALGORITHM = "OSS4-HMAC-SHA256"
# The region a service signs for unless configured (`region`): the OSS API reference's examples
# use Hangzhou. Clients must sign for the same one (oss2.Bucket(..., region=...)).
DEFAULT_REGION = "cn-hangzhou"
PRODUCT = "oss"
TERMINATOR = "aliyun_v4_request"
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
# Headers signed whether or not the client lists them (beside every x-oss-* header).
DEFAULT_SIGNED_HEADERS = frozenset({"content-type", "content-md5"})
# A presigned URL's parameters; x-oss-signature is the one parameter not signed.
URL_SIGNATURE = "x-oss-signature"
URL_VERSION = "x-oss-signature-version"
URL_CREDENTIAL = "x-oss-credential"
URL_DATE = "x-oss-date"
URL_EXPIRES = "x-oss-expires"
URL_ADDITIONAL_HEADERS = "x-oss-additional-headers"
# Presigned URLs live at most 7 days (OSS documentation, V4 signatures in presigned URLs).
MAX_URL_EXPIRES_S = 7 * 24 * 3600
# Longest AdditionalHeaders list we take; a client lists a handful, more is an attack.
MAX_ADDITIONAL_HEADERS = 32

_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-~.")
_DATE_TIME = re.compile(r"(\d{8})T(\d{6})Z")
_TEXT_ERRORS = "surrogatepass"  # peer text may hold lone surrogates; they just never match


def uri_encode(text: str, *, keep_slash: bool) -> str:
    out = []
    for byte in text.encode("utf-8", _TEXT_ERRORS):
        if byte in _UNRESERVED or (keep_slash and byte == 0x2F):
            out.append(chr(byte))
        else:
            out.append(f"%{byte:02X}")
    return "".join(out)


def canonical_uri(bucket: str | None, key: str) -> str:
    return uri_encode(f"/{bucket}/{key}" if bucket else "/", keep_slash=True)


def canonical_query(query: Sequence[tuple[str, str | None]]) -> str:
    """Every parameter but the signature itself, encoded, sorted; a blank value is the bare
    name. Names are unique in what oss2 sends; for repeated ones the first wins, as
    everywhere in this service (livechannel.api.addressing.Target.param)."""
    encoded: dict[str, str] = {}
    for name, value in query:
        if name == URL_SIGNATURE:
            continue
        encoded.setdefault(
            uri_encode(name, keep_slash=False), uri_encode(value or "", keep_slash=False)
        )
    return "&".join(f"{k}={v}" if v else k for k, v in sorted(encoded.items()))


def canonical_headers(headers: Iterable[tuple[str, str]], additional: Sequence[str]) -> str:
    """`name:value\\n` for each signed header, names lower-cased and sorted; a repeated header's
    values joined by commas, in order."""
    wanted = set(additional)
    found: dict[str, list[str]] = {}
    for name, value in headers:
        lower = name.lower()
        if lower.startswith("x-oss-") or lower in DEFAULT_SIGNED_HEADERS or lower in wanted:
            found.setdefault(lower, []).append(value.strip())
    return "".join(f"{name}:{','.join(found[name])}\n" for name in sorted(found))


def canonical_request(
    method: str,
    bucket: str | None,
    key: str,
    query: Sequence[tuple[str, str | None]],
    headers: Iterable[tuple[str, str]],
    additional: Sequence[str],
    payload_hash: str,
) -> str:
    return "\n".join(
        (
            method,
            canonical_uri(bucket, key),
            canonical_query(query),
            canonical_headers(headers, additional),
            ";".join(additional),
            payload_hash,
        )
    )


def scope(date: str, region: str) -> str:
    return f"{date}/{region}/{PRODUCT}/{TERMINATOR}"


def string_to_sign(date_time: str, region: str, request: str) -> str:
    digest = hashlib.sha256(request.encode("utf-8", _TEXT_ERRORS)).hexdigest()
    return f"{ALGORITHM}\n{date_time}\n{scope(date_time[:8], region)}\n{digest}"


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode("utf-8", _TEXT_ERRORS), hashlib.sha256).digest()


def signature(secret: str, date_time: str, region: str, request: str) -> str:
    key = _hmac(("aliyun_v4" + secret).encode("utf-8", _TEXT_ERRORS), date_time[:8])
    for part in (region, PRODUCT, TERMINATOR):
        key = _hmac(key, part)
    return hmac.new(
        key, string_to_sign(date_time, region, request).encode(), hashlib.sha256
    ).hexdigest()


def parse_date_time(text: str) -> int | None:
    """`20231203T083018Z` (ISO 8601 basic, UTC) → Unix seconds; None if it is not one."""
    if not _DATE_TIME.fullmatch(text):
        return None
    try:
        return int(datetime.strptime(text, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC).timestamp())
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class Credential:
    access_key_id: str
    date: str  # yyyymmdd
    region: str


def parse_credential(text: str, where: str) -> Credential:
    """`<AccessKeyId>/<yyyymmdd>/<region>/oss/aliyun_v4_request`."""
    parts = text.split("/")
    if len(parts) != 5 or parts[3:] != [PRODUCT, TERMINATOR] or not all(parts[:3]):
        raise InvalidArgument(
            f"{where}: the credential must be "
            f"<AccessKeyId>/<yyyymmdd>/<region>/{PRODUCT}/{TERMINATOR}",
            ArgumentName=where,
            ArgumentValue=text,
        )
    if not re.fullmatch(r"\d{8}", parts[1]):
        raise InvalidArgument(f"{where}: the credential's date is not yyyymmdd",
                              ArgumentName=where, ArgumentValue=text)  # fmt: skip
    return Credential(parts[0], parts[1], parts[2])


def parse_additional_headers(text: str, where: str) -> tuple[str, ...]:
    """`host;range` → ("host", "range"), lower-cased and sorted as the client signed them."""
    names = {n.strip().lower() for n in text.split(";") if n.strip()}
    # Headers signed anyway are not "additional" (oss2 leaves them out of the list it signs).
    names = {n for n in names if not n.startswith("x-oss-") and n not in DEFAULT_SIGNED_HEADERS}
    if len(names) > MAX_ADDITIONAL_HEADERS:
        raise InvalidArgument(f"{where}: more than {MAX_ADDITIONAL_HEADERS} additional headers",
                              ArgumentName=where)  # fmt: skip
    return tuple(sorted(names))


@dataclass(frozen=True, slots=True)
class HeaderAuthorization:
    credential: Credential
    additional: tuple[str, ...]
    signature: str


def parse_authorization(text: str) -> HeaderAuthorization:
    """`OSS4-HMAC-SHA256 Credential=.., [AdditionalHeaders=..,] Signature=..` (the fields in
    any order, separated by commas with or without spaces)."""
    algorithm, _, rest = text.strip().partition(" ")
    if algorithm != ALGORITHM:
        raise InvalidArgument(f"Authorization: the algorithm must be {ALGORITHM}")
    fields: dict[str, str] = {}
    for item in rest.split(","):
        name, eq, value = item.strip().partition("=")
        if not eq or name in fields:
            raise InvalidArgument(
                "Authorization must be 'OSS4-HMAC-SHA256 Credential=..., Signature=...'"
            )
        fields[name] = value.strip()
    unknown = set(fields) - {"Credential", "AdditionalHeaders", "Signature"}
    if unknown or "Credential" not in fields or not fields.get("Signature"):
        raise InvalidArgument(
            "Authorization must be 'OSS4-HMAC-SHA256 Credential=..., "
            "[AdditionalHeaders=...,] Signature=...'"
        )
    return HeaderAuthorization(
        parse_credential(fields["Credential"], "Credential"),
        parse_additional_headers(fields.get("AdditionalHeaders", ""), "AdditionalHeaders"),
        fields["Signature"],
    )
