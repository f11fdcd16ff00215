"""Bucket- and service-level operations (OSS API reference): GetService, Get/PutBucketAcl,
GetBucket (ListObjects), DeleteMultipleObjects.

Buckets are configured, not created through the API: a bucket exists when the service has an
object storage for it. PutBucketAcl changes an existing bucket's ACL; it never creates one.
"""

from __future__ import annotations

import contextlib
from urllib.parse import quote

from aiohttp import web

from livechannel.api import xml
from livechannel.api.addressing import check_object_name
from livechannel.api.body import check_content_md5, read_limited
from livechannel.api.call import Call
from livechannel.api.channels import parse_max_keys
from livechannel.api.dates import iso8601_ms
from livechannel.api.responses import empty_response, xml_response
from livechannel.errors import InvalidArgument, InvalidObjectName, MalformedXML
from livechannel.store.base import Acl

OWNER_ID = "livechannel"  # one owner (whoever holds a key) owns every bucket
LOCATION = "livechannel"  # OSS API reference, GetService Location: there are no regions here
# OSS API reference, DeleteMultipleObjects: at most 1000 objects, a body of at most 2 MB.
MAX_DELETE_KEYS = 1000
MAX_DELETE_BODY_BYTES = 2 * 1024 * 1024
# OSS API reference, GetBucket (ListObjects): prefix, marker, delimiter under 1024 bytes.
MAX_LIST_PARAM_BYTES = 1023

_OWNER: xml.XmlNode = ("Owner", [("ID", OWNER_ID), ("DisplayName", OWNER_ID)])


async def bucket_acl(call: Call) -> Acl:
    bucket = await call.ctx.store.get_bucket(call.bucket)
    return bucket.acl if bucket is not None else Acl.PRIVATE


async def get_bucket_acl(call: Call) -> web.StreamResponse:
    acl = await bucket_acl(call)
    return xml_response(
        ("AccessControlPolicy", [_OWNER, ("AccessControlList", [("Grant", acl.value)])])
    )


async def put_bucket_acl(call: Call) -> web.StreamResponse:
    text = call.request.headers.get("x-oss-acl", "")
    try:
        acl = Acl(text)
    except ValueError:
        # OSS API reference, PutBucketACL's example answer for an unknown ACL.
        raise InvalidArgument(
            "no such bucket access control exists", ArgumentName="x-oss-acl", ArgumentValue=text
        ) from None
    store = call.ctx.store
    await store.ensure_bucket(call.bucket, acl, call.now_ms())
    await store.set_bucket_acl(call.bucket, acl)
    return empty_response(200)


def _list_param(call: Call, name: str) -> str:
    value = call.target.param(name) or ""
    if len(value.encode()) > MAX_LIST_PARAM_BYTES:
        raise InvalidArgument(f"{name} is too long", ArgumentName=name, ArgumentValue=value)
    return value


async def list_objects(call: Call) -> web.StreamResponse:
    prefix = _list_param(call, "prefix")
    marker = _list_param(call, "marker")
    delimiter = _list_param(call, "delimiter")
    max_keys = parse_max_keys(call.target.param("max-keys"))
    encoding = call.target.param("encoding-type") or ""
    if encoding not in ("", "url"):
        raise InvalidArgument("encoding-type must be url", ArgumentName="encoding-type")
    encoded = encoding == "url"

    def enc(text: str) -> str:
        # oss2 sends encoding-type=url and unquotes Key/Prefix/Marker/NextMarker/Delimiter.
        return quote(text, safe="/") if encoded else text

    result = await call.storage.list(prefix, marker, max_keys, delimiter)
    next_marker = result.next_marker
    if result.is_truncated and not next_marker:
        # Never IsTruncated=true with an empty NextMarker: a client would loop forever.
        listed = [o.key for o in result.objects] + result.common_prefixes
        next_marker = max(listed) if listed else marker
    children: list[xml.XmlNode] = [
        ("Name", call.bucket),
        ("Prefix", enc(prefix)),
        ("Marker", enc(marker)),
        ("MaxKeys", max_keys),
        ("Delimiter", enc(delimiter)),
    ]
    if encoded:
        children.append(("EncodingType", "url"))
    children.append(("IsTruncated", result.is_truncated))
    if result.is_truncated:
        children.append(("NextMarker", enc(next_marker)))
    for info in result.objects:
        children.append(
            (
                "Contents",
                [
                    ("Key", enc(info.key)),
                    ("LastModified", iso8601_ms(info.last_modified_ms)),
                    ("ETag", f'"{info.etag}"'),
                    ("Type", "Normal"),
                    ("Size", info.size),
                    ("StorageClass", "Standard"),
                    _OWNER,
                ],
            )
        )
    for common in result.common_prefixes:
        children.append(("CommonPrefixes", [("Prefix", enc(common))]))
    return xml_response(("ListBucketResult", children))


def _delete_request(body: bytes) -> tuple[list[str], bool]:
    root = xml.parse(body)
    if root.tag != "Delete":
        raise MalformedXML("the root element must be Delete")
    quiet_text = (xml.child_text(root, "Quiet") or "false").lower()
    if quiet_text not in ("true", "false"):
        raise MalformedXML("Quiet must be true or false")
    keys = [(node.findtext("Key") or "") for node in root.findall("Object")]
    if not keys:
        raise MalformedXML("Delete needs at least one Object")
    if len(keys) > MAX_DELETE_KEYS:
        raise MalformedXML(f"at most {MAX_DELETE_KEYS} objects per request")
    return keys, quiet_text == "true"


async def delete_multiple_objects(call: Call) -> web.StreamResponse:
    body = await read_limited(call.request, MAX_DELETE_BODY_BYTES, call.ctx.http_body_timeout_s)
    check_content_md5(call.request, body, required=True)
    keys, quiet = _delete_request(body)
    for key in keys:
        check_object_name(key)  # all names first: nothing is deleted if one is invalid
    encoded = call.target.param("encoding-type") == "url"
    storage = call.storage
    deleted: list[xml.XmlNode] = []
    for key in keys:
        # A name our store cannot hold cannot exist; OSS reports absent keys as deleted too.
        with contextlib.suppress(InvalidObjectName):
            await storage.delete(key)
        deleted.append(("Deleted", [("Key", quote(key, safe="/") if encoded else key)]))
    if quiet:
        # OSS API reference, DeleteMultipleObjects: quiet mode lists only failures; none here.
        return empty_response(200)
    children: list[xml.XmlNode] = []
    if encoded:
        children.append(("EncodingType", "url"))
    children.extend(deleted)
    return xml_response(("DeleteResult", children))


async def get_service(call: Call) -> web.StreamResponse:
    prefix = call.target.param("prefix") or ""
    marker = call.target.param("marker") or ""
    max_keys = parse_max_keys(call.target.param("max-keys"))
    names = sorted(n for n in call.ctx.storages if n.startswith(prefix) and n > marker)
    page, truncated = names[:max_keys], len(names) > max_keys
    children: list[xml.XmlNode] = []
    if truncated:
        # OSS API reference, GetService: these appear only when not every bucket was returned.
        children += [
            ("Prefix", prefix),
            ("Marker", marker),
            ("MaxKeys", max_keys),
            ("IsTruncated", True),
            ("NextMarker", page[-1]),
        ]
    children.append(_OWNER)
    endpoint = call.ctx.urls.domain
    buckets: list[xml.XmlNode] = []
    for name in page:
        record = await call.ctx.store.get_bucket(name)
        buckets.append(
            (
                "Bucket",
                [
                    ("CreationDate", iso8601_ms(record.created_ms if record else 0)),
                    ("ExtranetEndpoint", endpoint),
                    ("IntranetEndpoint", endpoint),
                    ("Location", LOCATION),
                    ("Name", name),
                    ("StorageClass", "Standard"),
                ],
            )
        )
    children.append(("Buckets", buckets))
    return xml_response(("ListAllMyBucketsResult", children))
