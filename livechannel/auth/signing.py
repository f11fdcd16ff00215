"""OSS V1 signatures and RTMP publish signatures. Sans-IO.

OSS API reference, access control (signature in the header, signature in the URL) and
LiveChannel (RTMP publish URL and signature).

One place computes every string to sign, so the HTTP edge, the RTMP edge and the signed URLs we
hand out (`x-oss-process=hls/sign`) agree byte for byte with what `oss2` produces. Nothing here
reads a clock: `now_s` is an argument.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping, Sequence

from livechannel.errors import AccessDenied, InvalidAccessKeyId, SignatureDoesNotMatch

# OSS API reference, signature in the header, lists these sub-resources and ends with "etc.";
# the rest are the ones `oss2` 2.19 signs (auth.py `_subresource_key_set`). A parameter in
# this set is part of the signed resource, so whatever a client signs we must sign too, or its
# signature cannot verify.
SUB_RESOURCES: frozenset[str] = frozenset(
    {
        # OSS API reference, signature in the header
        "acl", "uploads", "location", "cors", "logging", "website", "referer", "lifecycle",
        "delete", "append", "tagging", "objectMeta", "uploadId", "partNumber",
        "security-token", "position", "img", "style", "styleName", "replication",
        "replicationProgress", "replicationLocation", "cname", "bucketInfo", "comp", "qos",
        "live", "status", "vod", "startTime", "endTime", "symlink", "x-oss-process",
        "response-content-type", "response-content-language", "response-expires",
        "response-cache-control", "response-content-disposition", "response-content-encoding",
        # oss2 2.19 additionally
        "group", "link", "objectInfo", "restore", "stat", "callback", "callback-var",
        "encryption", "versions", "versioning", "versionId", "policy", "requestPayment",
        "x-oss-traffic-limit", "qosInfo", "asyncFetch", "x-oss-request-payer", "sequential",
        "inventory", "inventoryId", "continuation-token", "worm", "wormId", "wormExtend",
        "transferAcceleration", "metaQuery", "x-oss-ac-source-ip", "x-oss-ac-subnet-mask",
        "x-oss-ac-vpc-id", "x-oss-ac-forward-allow", "resourceGroup", "x-oss-async-process",
        "regionList", "x-oss-write-get-object-response", "bucketArchiveDirectRead",
        "httpsConfig", "redundancyTransition", "x-oss-target-redundancy-type",
        "x-oss-redundancy-transition-taskid", "accessPoint", "accessPointPolicy",
        "publicAccessBlock", "x-oss-access-point-name", "requesterQosInfo", "qosRequester",
        "resourcePoolInfo", "resourcePool", "resourcePoolBuckets",
    }
)  # fmt: skip

# OSS API reference, RTMP publish URL and signature: these RTMP URL parameters are not part
# of CanonicalizedParams.
RTMP_UNSIGNED_PARAMS = frozenset({"SecurityToken", "OSSAccessKeyId", "Expires", "Signature"})

# OSS API reference, signature in the URL: a signed URL carries all three.
URL_SIGNATURE_PARAMS = ("OSSAccessKeyId", "Expires", "Signature")
# A Unix time has 10 digits until 2286; far longer is garbage (and int() refuses > 4300).
MAX_EXPIRES_DIGITS = 20
# Peer text reaches us with lone surrogates (AMF0 decodes invalid UTF-8 with surrogateescape);
# encoding them must not raise, and such text simply never matches a real signature.
_TEXT_ERRORS = "surrogatepass"


def parse_expires(text: str) -> int | None:
    """Expires as seconds since the epoch, None when it is not a plain decimal number."""
    if not text.isascii() or not text.isdigit() or len(text) > MAX_EXPIRES_DIGITS:
        return None
    return int(text)


def hmac_sha1_b64(secret: str, string_to_sign: str) -> str:
    """base64(hmac-sha1(secret, string)); both sides UTF-8.

    OSS API reference, signature in the header: "签名的字符串必须为 UTF-8".
    """
    digest = hmac.new(
        secret.encode("utf-8", _TEXT_ERRORS),
        string_to_sign.encode("utf-8", _TEXT_ERRORS),
        hashlib.sha1,
    ).digest()
    return base64.b64encode(digest).decode("ascii")


def signatures_equal(expected: str, provided: str) -> bool:
    """Constant-time comparison, so response timing does not reveal a correct prefix."""
    return hmac.compare_digest(
        expected.encode("utf-8", _TEXT_ERRORS), provided.encode("utf-8", _TEXT_ERRORS)
    )


def canonical_resource(
    bucket: str | None, key: str | None, query: Sequence[tuple[str, str | None]]
) -> str:
    """CanonicalizedResource (OSS API reference, signature in the header).

    `/bucket/key?sub&sub=v`, sub-resources sorted by name.

    `key` is the decoded object name. A blank value (`live` or `live=`) is written as the bare
    name, as `oss2` does. Only names in SUB_RESOURCES count; `prefix`, `marker` ... do not.
    """
    path = f"/{bucket}/{key or ''}" if bucket else "/"
    subs = sorted(((k, v) for k, v in query if k in SUB_RESOURCES), key=lambda kv: kv[0])
    if not subs:
        return path
    return path + "?" + "&".join(f"{k}={v}" if v else k for k, v in subs)


def canonical_oss_headers(headers: Mapping[str, str]) -> str:
    """CanonicalizedOSSHeaders (OSS API reference, signature in the header).

    `x-oss-*` names lower-cased, sorted, `name:value\\n`.
    """
    pairs = sorted(
        (name.lower(), value.strip())
        for name, value in headers.items()
        if name.lower().startswith("x-oss-")
    )
    return "".join(f"{name}:{value}\n" for name, value in pairs)


def header_string_to_sign(
    verb: str,
    content_md5: str,
    content_type: str,
    date_or_expires: str,
    oss_headers: Mapping[str, str],
    resource: str,
) -> str:
    """VERB\\nContent-MD5\\nContent-Type\\nDate\\nCanonicalizedOSSHeaders+CanonicalizedResource.

    Header signatures use the Date, URL signatures the Expires value (OSS API reference,
    signature in the URL).
    """
    return (
        "\n".join(
            (verb, content_md5, content_type, date_or_expires, canonical_oss_headers(oss_headers))
        )
        + resource
    )


def sign_url_params(
    access_key_id: str,
    secret: str,
    verb: str,
    bucket: str,
    key: str,
    expires_s: int,
    query: Sequence[tuple[str, str | None]] = (),
    content_md5: str = "",
    content_type: str = "",
    oss_headers: Mapping[str, str] | None = None,
) -> list[tuple[str, str]]:
    """The three parameters that make a signed URL, as `bucket.sign_url` makes them.

    OSS API reference, signature in the URL.

    The caller appends them (percent-encoded) after the URL's own `query`, which is signed too.
    """
    resource = canonical_resource(bucket, key, query)
    string_to_sign = header_string_to_sign(
        verb, content_md5, content_type, str(expires_s), oss_headers or {}, resource
    )
    return [
        ("OSSAccessKeyId", access_key_id),
        ("Expires", str(expires_s)),
        ("Signature", hmac_sha1_b64(secret, string_to_sign)),
    ]


def rtmp_string_to_sign(expires: str, params: Mapping[str, str], bucket: str, channel: str) -> str:
    """Expires\\n + "key:value\\n" per param in key order + /bucket/channel.

    OSS API reference, RTMP publish URL and signature.
    """
    signed = sorted((k, v) for k, v in params.items() if k not in RTMP_UNSIGNED_PARAMS)
    return f"{expires}\n" + "".join(f"{k}:{v}\n" for k, v in signed) + f"/{bucket}/{channel}"


def check_rtmp_publish(
    params: Mapping[str, str],
    bucket: str,
    channel: str,
    credentials: Mapping[str, str],
    now_s: int,
) -> None:
    """Verify a signed RTMP publish URL; raise a typed error whose message the publisher sees.

    `params` are the URL's query parameters, already percent-decoded once. Like URL signing
    (OSS API reference, signature in the URL), the expiry is checked before the signature.
    """
    access_key_id = params.get("OSSAccessKeyId")
    expires = params.get("Expires")
    provided = params.get("Signature")
    if not access_key_id or not expires or not provided:
        raise AccessDenied("missing OSSAccessKeyId, Expires or Signature")
    expires_s = parse_expires(expires)
    if expires_s is None:
        raise AccessDenied("invalid Expires")
    if now_s > expires_s:
        raise AccessDenied("signature expired")
    secret = credentials.get(access_key_id)
    if secret is None:
        raise InvalidAccessKeyId("unknown access key id")
    expected = hmac_sha1_b64(secret, rtmp_string_to_sign(expires, params, bucket, channel))
    if not signatures_equal(expected, provided):
        raise SignatureDoesNotMatch("signature does not match")
