"""Which bucket, object key and query a request names (spec: Addressing). Sans-IO.

The bucket comes from the Host (`<bucket>.<domain>`, virtual-host style) or, for any other
Host (an IP address, `localhost`, a proxy's name), from the first path segment (path style,
what `oss2` sends to IP endpoints). The bucket is split off the RAW path before the key is
percent-decoded, exactly once: `oss2` sends `/` inside keys as `%2F`, and `+` is a plus.

The query is decoded as application/x-www-form-urlencoded (WHATWG URL, "application/
x-www-form-urlencoded parsing"): `+` is a space. `oss2` sends its parameters through
`requests`, which form-encodes them (`prefix=sp+ace`), and signs sub-resource values decoded;
keeping the `+` listed nothing and failed the signature of any sub-resource value with a space.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote, unquote_plus

from livechannel.errors import InvalidArgument, InvalidBucketName, InvalidObjectName

# OSS bucket names: 3..63 lower-case letters, digits and hyphens, no hyphen at either end.
BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9-]{1,61}[a-z0-9]")
MAX_KEY_BYTES = 1023  # OSS API reference, PutObject, InvalidObjectName: "大于1023字节"


@dataclass(frozen=True, slots=True)
class Target:
    bucket: str | None  # None: the service itself (GetService)
    key: str  # decoded object name; "" for the bucket
    query: tuple[tuple[str, str | None], ...]  # in request order; None = no "=" (bare `live`)
    path_style: bool = False  # the bucket was the first path segment, not in the Host

    @property
    def bucket_path(self) -> str:
        """The URL path of the bucket's root as the client addressed it ("" or "/<bucket>")."""
        return f"/{self.bucket}" if self.path_style and self.bucket else ""

    def has(self, name: str) -> bool:
        return any(k == name for k, _ in self.query)

    def param(self, name: str) -> str | None:
        """The first occurrence's value ("" when blank), None when absent (first wins: OSS API
        reference, signature in the URL)."""
        for k, v in self.query:
            if k == name:
                return v or ""
        return None


def _decode(raw: str) -> str:
    # errors="strict": a percent-escape that is not UTF-8 is a malformed request, not U+FFFD.
    return unquote(raw, encoding="utf-8", errors="strict")


def form_decode(raw: str) -> str:
    """One query name or value, application/x-www-form-urlencoded: `+` is a space."""
    return unquote_plus(raw, encoding="utf-8", errors="strict")


# A V1 signature is base64, which has `+` and never a space: a URL built by hand (or copied
# from a log) with the Signature's `+` left unescaped still means `+` there.
BASE64_PARAMS = frozenset({"Signature"})


def parse_query(raw_query: str) -> tuple[tuple[str, str | None], ...]:
    """`a&b=&c=x%2By&d=p+q` -> (("a", None), ("b", ""), ("c", "x+y"), ("d", "p q")). Blank
    values are kept."""
    pairs: list[tuple[str, str | None]] = []
    for part in raw_query.split("&"):
        if not part:
            continue
        raw_name, eq, raw_value = part.partition("=")
        try:
            name = form_decode(raw_name)
            value = form_decode(raw_value) if eq else None
        except UnicodeDecodeError as e:
            raise InvalidArgument("query parameter is not valid UTF-8 after decoding") from e
        if name in BASE64_PARAMS and value is not None:
            value = value.replace(" ", "+")
        pairs.append((name, value))
    return tuple(pairs)


def bucket_from_host(host: str, domain: str) -> str | None:
    """`bucket.domain[:port]` -> "bucket"; anything else -> None (path style)."""
    name = host.strip().lower()
    if name.startswith("["):  # IPv6 literal: always path style
        return None
    name = name.rsplit(":", 1)[0] if ":" in name else name
    suffix = "." + domain.lower().rstrip(".")
    if name.endswith(suffix) and len(name) > len(suffix):
        return name[: -len(suffix)]
    return None


def check_bucket_name(bucket: str) -> None:
    if not BUCKET_NAME.fullmatch(bucket):
        raise InvalidBucketName("bucket name must be 3-63 of [a-z0-9-], no hyphen at the ends")


def check_object_name(key: str) -> None:
    """Object-name rules (OSS API reference, PutObject): UTF-8, 1..1023 bytes, not starting
    with `/` or `\\`."""
    if not key:
        raise InvalidObjectName("object name is empty")
    if len(key.encode()) > MAX_KEY_BYTES:
        raise InvalidObjectName("object name is longer than 1023 bytes")
    if key[0] in "/\\":
        raise InvalidObjectName("object name must not start with / or \\")
    if "\x00" in key:
        raise InvalidObjectName("object name must not contain NUL")


def parse_target(host: str, raw_target: str, domain: str) -> Target:
    """Split a request-target (origin- or absolute-form) into bucket, key and query."""
    raw = raw_target
    if "://" in raw.split("?", 1)[0]:  # absolute-form (RFC 9112 3.2.2): drop scheme://authority
        after_scheme = raw.split("://", 1)[1]
        slash = after_scheme.find("/")
        raw = after_scheme[slash:] if slash >= 0 else "/"
    raw_path, _, raw_query = raw.partition("?")
    raw_path = raw_path.split("#", 1)[0]
    if not raw_path.startswith("/"):
        raw_path = "/" + raw_path
    query = parse_query(raw_query)
    bucket = bucket_from_host(host, domain) if domain else None
    path_style = bucket is None
    rest = raw_path[1:]
    if bucket is None:
        if not rest:
            return Target(None, "", query)
        raw_bucket, _, rest = rest.partition("/")
        try:
            bucket = _decode(raw_bucket)
        except UnicodeDecodeError as e:
            raise InvalidBucketName("bucket name is not valid UTF-8") from e
    check_bucket_name(bucket)
    try:
        key = _decode(rest)
    except UnicodeDecodeError as e:
        raise InvalidObjectName("object name is not valid UTF-8 after decoding") from e
    return Target(bucket, key, query, path_style)
