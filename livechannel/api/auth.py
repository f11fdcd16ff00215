"""Who is calling (OSS V1 or V4, header or URL signature) and may they (bucket ACL).

OSS API reference, access control: signature in the header, signature in the URL, bucket ACL;
V4 (OSS4-HMAC-SHA256): livechannel.auth.signing_v4, for the region this service is configured
with (a credential scoped to another region is 400 InvalidArgument, as OSS answers).

Sans-IO: headers come in as a case-insensitive mapping, the time as an argument. Error codes
are the spec's: a malformed Authorization or a signature in both places is 400
InvalidArgument; no/invalid Date, an anonymous caller the ACL refuses, a missing URL
parameter or an expired URL are 403 AccessDenied; an unknown key 403 InvalidAccessKeyId; a
Date more than 15 minutes off 403 RequestTimeTooSkewed; a wrong signature 403
SignatureDoesNotMatch, with the StringToSign we computed (never the secret) to help debugging.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import Enum

from livechannel.api.addressing import Target
from livechannel.api.dates import parse_http_date
from livechannel.auth import signing, signing_v4
from livechannel.errors import (
    AccessDenied,
    InvalidAccessKeyId,
    InvalidArgument,
    RequestTimeTooSkewed,
    SignatureDoesNotMatch,
)
from livechannel.store.base import Acl

# OSS API reference, signature in the header: a Date more than 15 minutes from the server
# clock is refused.
MAX_SKEW_S = 15 * 60

_AUTHORIZATION = re.compile(r"OSS ([^:\s]+):(\S+)")


@dataclass(frozen=True, slots=True)
class Identity:
    """Who signed the request. `access_key_id` None: anonymous."""

    access_key_id: str | None = None
    # Expires of a URL-signed request (OSS API reference, signature in the URL); hls/sign
    # re-uses it for the segment URLs.
    url_expires_s: int | None = None

    @property
    def anonymous(self) -> bool:
        return self.access_key_id is None


class Access(Enum):
    """What an operation touches, which decides whether an anonymous caller may do it."""

    PREFLIGHT = "preflight"  # CORS preflight: browsers never send credentials with it
    READ = "read"  # GetObject, HeadObject, ListObjects: public-read or public-read-write
    WRITE = "write"  # DeleteObject(s): public-read-write only
    CHANNEL = "channel"  # every LiveChannel operation: public-read-write only
    # Bucket ACL, GetService: always signed (OSS API reference, GetService, PutBucketACL,
    # GetBucketAcl).
    OWNER = "owner"


_ANONYMOUS_ALLOWED: dict[Access, frozenset[Acl]] = {
    Access.PREFLIGHT: frozenset(Acl),
    Access.READ: frozenset({Acl.PUBLIC_READ, Acl.PUBLIC_READ_WRITE}),
    Access.WRITE: frozenset({Acl.PUBLIC_READ_WRITE}),
    Access.CHANNEL: frozenset({Acl.PUBLIC_READ_WRITE}),
    Access.OWNER: frozenset(),
}


def authorize(access: Access, acl: Acl, identity: Identity) -> None:
    """Any valid key may do anything; an anonymous caller only what the bucket ACL allows."""
    if identity.anonymous and acl not in _ANONYMOUS_ALLOWED[access]:
        raise AccessDenied("anonymous access is not allowed; sign the request")


def oss_headers(items: Iterable[tuple[str, str]]) -> dict[str, str]:
    """The request's `x-oss-*` headers, names lower-cased; repeated ones joined by commas."""
    found: dict[str, list[str]] = {}
    for name, value in items:
        lower = name.lower()
        if lower.startswith("x-oss-"):
            found.setdefault(lower, []).append(value.strip())
    return {name: ",".join(values) for name, values in found.items()}


def _mismatch(string_to_sign: str, provided: str, access_key_id: str) -> SignatureDoesNotMatch:
    return SignatureDoesNotMatch(
        "The request signature we calculated does not match the signature you provided. "
        "Check your key and signing method.",
        StringToSign=string_to_sign,
        StringToSignBytes=" ".join(f"{b:02x}" for b in string_to_sign.encode()),
        SignatureProvided=provided,
        OSSAccessKeyId=access_key_id,
    )


def authenticate(
    method: str,
    headers: Mapping[str, str],
    header_items: Iterable[tuple[str, str]],
    target: Target,
    credentials: Mapping[str, str],
    now_s: int,
    region: str = signing_v4.DEFAULT_REGION,
) -> Identity:
    """Verify the request's signature, if any. `headers` must be case-insensitive."""
    authorization = headers.get("Authorization")
    in_url = [name for name in signing.URL_SIGNATURE_PARAMS if target.has(name)]
    v4_url = target.has(signing_v4.URL_VERSION)
    if authorization is not None and (in_url or v4_url):
        raise InvalidArgument("a signature may be in the header or in the URL, not both")
    if in_url and v4_url:
        raise InvalidArgument("a URL carries one signature: V1 (Signature) or V4, not both")
    if authorization is None and not in_url and not v4_url:
        return Identity()
    v4 = V4Request(method, list(header_items), target, credentials, now_s, region)
    if v4_url:
        return v4.verify_url()
    if authorization is not None and authorization.lstrip().startswith(signing_v4.ALGORITHM):
        return v4.verify_header(authorization, headers)
    resource = signing.canonical_resource(target.bucket, target.key, target.query)
    signed_headers = oss_headers(header_items)
    content_md5 = headers.get("Content-MD5", "")
    content_type = headers.get("Content-Type", "")

    if authorization is not None:
        m = _AUTHORIZATION.fullmatch(authorization.strip())
        if m is None:
            raise InvalidArgument("Authorization must be 'OSS <AccessKeyId>:<Signature>'")
        access_key_id, provided = m.groups()
        # oss2 signs x-oss-date instead of Date when it sends one; so do we.
        date = headers.get("x-oss-date") or headers.get("Date")
        if not date:
            raise AccessDenied("the Date header is required for a signed request")
        date_s = parse_http_date(date)
        if date_s is None:
            raise AccessDenied("the Date header is not an RFC 1123 GMT date")
        secret = credentials.get(access_key_id)
        if secret is None:
            raise InvalidAccessKeyId("the OSS access key id you provided does not exist")
        if abs(now_s - date_s) > MAX_SKEW_S:
            raise RequestTimeTooSkewed(
                "the difference between the request time and the server time is too large",
                RequestTime=date,
                MaxAllowedSkewMilliseconds=str(MAX_SKEW_S * 1000),
            )
        date_line = date
        identity = Identity(access_key_id)
    else:
        access_key_id = target.param("OSSAccessKeyId") or ""
        expires = target.param("Expires") or ""
        provided = target.param("Signature") or ""
        if not (access_key_id and expires and provided):
            raise AccessDenied("a signed URL needs OSSAccessKeyId, Expires and Signature")
        expires_s = signing.parse_expires(expires)
        if expires_s is None:
            raise AccessDenied("Expires is not a Unix time")
        # OSS API reference, signature in the URL: the expiry is checked before the signature.
        if now_s > expires_s:
            raise AccessDenied("Request has expired.", Expires=expires)
        secret = credentials.get(access_key_id)
        if secret is None:
            raise InvalidAccessKeyId("the OSS access key id you provided does not exist")
        date_line = expires
        identity = Identity(access_key_id, expires_s)

    string_to_sign = signing.header_string_to_sign(
        method, content_md5, content_type, date_line, signed_headers, resource
    )
    expected = signing.hmac_sha1_b64(secret, string_to_sign)
    if not signing.signatures_equal(expected, provided):
        raise _mismatch(string_to_sign, provided, access_key_id)
    return identity


@dataclass(frozen=True, slots=True)
class V4Request:
    """A request signed with OSS4-HMAC-SHA256, in the header or in the URL."""

    method: str
    header_items: list[tuple[str, str]]
    target: Target
    credentials: Mapping[str, str]
    now_s: int
    region: str

    def verify_header(self, authorization: str, headers: Mapping[str, str]) -> Identity:
        auth = signing_v4.parse_authorization(authorization)
        date_time = headers.get("x-oss-date", "")
        date_s = signing_v4.parse_date_time(date_time)
        if date_s is None:
            raise AccessDenied("a V4 signature needs x-oss-date as yyyymmddThhmmssZ")
        secret = self._secret(auth.credential, date_time, "Credential")
        if abs(self.now_s - date_s) > MAX_SKEW_S:
            raise RequestTimeTooSkewed(
                "the difference between the request time and the server time is too large",
                RequestTime=date_time,
                MaxAllowedSkewMilliseconds=str(MAX_SKEW_S * 1000),
            )
        payload = headers.get("x-oss-content-sha256", signing_v4.UNSIGNED_PAYLOAD)
        self._check(secret, auth.credential, date_time, auth.additional, payload, auth.signature)
        return Identity(auth.credential.access_key_id)

    def verify_url(self) -> Identity:
        t = self.target
        version = t.param(signing_v4.URL_VERSION)
        if version != signing_v4.ALGORITHM:
            raise InvalidArgument(
                f"{signing_v4.URL_VERSION} must be {signing_v4.ALGORITHM}",
                ArgumentName=signing_v4.URL_VERSION, ArgumentValue=version or "",
            )  # fmt: skip
        needed = (signing_v4.URL_CREDENTIAL, signing_v4.URL_DATE, signing_v4.URL_EXPIRES,
                  signing_v4.URL_SIGNATURE)  # fmt: skip
        missing = [name for name in needed if not t.param(name)]
        if missing:
            raise AccessDenied(f"a V4 signed URL needs {', '.join(missing)}")
        date_time = t.param(signing_v4.URL_DATE) or ""
        date_s = signing_v4.parse_date_time(date_time)
        expires = t.param(signing_v4.URL_EXPIRES) or ""
        if date_s is None:
            raise AccessDenied(f"{signing_v4.URL_DATE} is not yyyymmddThhmmssZ")
        if (
            not (expires.isascii() and expires.isdigit())
            or len(expires) > 7
            or not (0 < int(expires) <= signing_v4.MAX_URL_EXPIRES_S)
        ):
            raise InvalidArgument(
                f"{signing_v4.URL_EXPIRES} must be 1..{signing_v4.MAX_URL_EXPIRES_S} seconds",
                ArgumentName=signing_v4.URL_EXPIRES, ArgumentValue=expires,
            )  # fmt: skip
        expires_s = date_s + int(expires)
        # As for V1 URLs, the expiry is checked before the signature.
        if self.now_s > expires_s:
            raise AccessDenied("Request has expired.", Expires=expires)
        if date_s - self.now_s > MAX_SKEW_S:
            raise AccessDenied(f"{signing_v4.URL_DATE} is in the future")
        credential = signing_v4.parse_credential(
            t.param(signing_v4.URL_CREDENTIAL) or "", signing_v4.URL_CREDENTIAL
        )
        secret = self._secret(credential, date_time, signing_v4.URL_CREDENTIAL)
        additional = signing_v4.parse_additional_headers(
            t.param(signing_v4.URL_ADDITIONAL_HEADERS) or "", signing_v4.URL_ADDITIONAL_HEADERS
        )
        provided = t.param(signing_v4.URL_SIGNATURE) or ""
        self._check(secret, credential, date_time, additional, signing_v4.UNSIGNED_PAYLOAD,
                    provided)  # fmt: skip
        return Identity(credential.access_key_id, expires_s)

    def _secret(self, credential: signing_v4.Credential, date_time: str, where: str) -> str:
        if credential.region != self.region:
            raise InvalidArgument(
                f"The signing region in credential is invalid: this service signs for "
                f"{self.region!r}, the credential says {credential.region!r}",
                ArgumentName=where, ArgumentValue=credential.region,
            )  # fmt: skip
        if credential.date != date_time[:8]:
            raise InvalidArgument(
                "the credential's date is not the request's date",
                ArgumentName=where, ArgumentValue=credential.date,
            )  # fmt: skip
        secret = self.credentials.get(credential.access_key_id)
        if secret is None:
            raise InvalidAccessKeyId("the OSS access key id you provided does not exist")
        return secret

    def _check(self, secret: str, credential: signing_v4.Credential, date_time: str,
               additional: tuple[str, ...], payload: str, provided: str) -> None:  # fmt: skip
        t = self.target
        request = signing_v4.canonical_request(
            self.method, t.bucket, t.key, t.query, self.header_items, additional, payload
        )
        expected = signing_v4.signature(secret, date_time, self.region, request)
        if not signing.signatures_equal(expected, provided):
            string_to_sign = signing_v4.string_to_sign(date_time, self.region, request)
            raise SignatureDoesNotMatch(
                "The request signature we calculated does not match the signature you "
                "provided. Check your key and signing method.",
                CanonicalRequest=request,
                StringToSign=string_to_sign,
                SignatureProvided=provided,
                OSSAccessKeyId=credential.access_key_id,
            )
