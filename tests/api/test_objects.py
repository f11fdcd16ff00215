"""Objects for playback through `oss2`: Get/Head/Delete, ranges, conditions, listing, signed
URLs, hls/sign, bucket ACL and GetService (OSS API reference: GetService, PutBucketACL,
GetBucket, GetBucketAcl, GetObject, DeleteObject, DeleteMultipleObjects, HeadObject)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, urljoin, urlsplit

import aiohttp
import oss2
import pytest

from tests.support.api_service import (
    AK,
    ON_LOCAL_AND_S3,
    PRIVATE,
    PUBLIC_READ,
    PUBLIC_RW,
    Service,
    sync,
)

PLAYLIST = b"#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:6\n#EXT-X-MEDIA-SEQUENCE:0\n" + (
    b"#EXTINF:5.000,\n1000.ts\n#EXTINF:5.000,\n1005.ts\n"
)
SEGMENT = bytes(range(256)) * 1200  # 300 KiB: more than one storage chunk


async def _put(service: Service, key: str, data: bytes, bucket: str = PRIVATE) -> None:
    await service.storages[bucket].put(key, data, "ignored")


@ON_LOCAL_AND_S3
async def test_get_object_streams_whole_object(service: Service) -> None:
    await _put(service, "cam/1000.ts", SEGMENT)
    result = await sync(service.bucket().get_object, "cam/1000.ts")
    assert await sync(result.read) == SEGMENT
    h = result.headers
    assert h["Content-Type"] == "video/MP2T"
    stored = await service.storages[PRIVATE].head("cam/1000.ts")
    assert stored is not None and h["ETag"] == f'"{stored.etag}"'
    assert result.etag == stored.etag
    assert h["Cache-Control"] == "max-age=31536000, immutable"
    assert h["Accept-Ranges"] == "bytes"
    assert int(h["Content-Length"]) == len(SEGMENT)
    assert result.last_modified > 1_600_000_000


@ON_LOCAL_AND_S3
async def test_playlist_content_type_and_short_cache(service: Service) -> None:
    await _put(service, "cam/playlist.m3u8", PLAYLIST)
    result = await sync(service.bucket().get_object, "cam/playlist.m3u8")
    assert result.headers["Content-Type"] == "application/x-mpegURL"
    assert result.headers["Cache-Control"] == "max-age=1"


@ON_LOCAL_AND_S3
async def test_get_object_to_file_with_crc_check(service: Service, tmp_path: Path) -> None:
    await _put(service, "cam/1000.ts", SEGMENT)
    target = tmp_path / "out.ts"
    await sync(service.bucket().get_object_to_file, "cam/1000.ts", str(target))
    assert target.read_bytes() == SEGMENT


@ON_LOCAL_AND_S3
@pytest.mark.parametrize(
    "byte_range, expected, content_range",
    [
        ((0, 9), SEGMENT[:10], f"bytes 0-9/{len(SEGMENT)}"),
        ((100, None), SEGMENT[100:], f"bytes 100-{len(SEGMENT) - 1}/{len(SEGMENT)}"),
        ((None, 5), SEGMENT[-5:], f"bytes {len(SEGMENT) - 5}-{len(SEGMENT) - 1}/{len(SEGMENT)}"),
        ((10, 10**9), SEGMENT[10:], f"bytes 10-{len(SEGMENT) - 1}/{len(SEGMENT)}"),
        ((None, 10**9), SEGMENT, f"bytes 0-{len(SEGMENT) - 1}/{len(SEGMENT)}"),
    ],
    ids=["first-10", "from-100", "last-5", "past-end", "suffix-past-start"],
)
async def test_ranges(
    service: Service, byte_range: tuple[int | None, int | None], expected: bytes, content_range: str
) -> None:
    await _put(service, "cam/1000.ts", SEGMENT)
    result = await sync(service.bucket().get_object, "cam/1000.ts", byte_range)
    assert result.status == 206
    assert result.headers["Content-Range"] == content_range
    assert await sync(result.read) == expected


@ON_LOCAL_AND_S3
async def test_range_past_the_end_is_416_and_bad_syntax_is_ignored(service: Service) -> None:
    await _put(service, "cam/1000.ts", SEGMENT)
    bucket = service.bucket()
    with pytest.raises(oss2.exceptions.ServerError) as e:
        await sync(bucket.get_object, "cam/1000.ts", (len(SEGMENT), None))
    assert (e.value.status, e.value.code) == (416, "InvalidRange")
    # OSS API reference, GetObject: a range that breaks the syntax is ignored: 200, the whole
    # object.
    result = await sync(bucket.get_object, "cam/1000.ts", headers={"Range": "bytes=9-1"})
    assert result.status == 200 and "Content-Range" not in result.headers
    assert await sync(result.read) == SEGMENT


@ON_LOCAL_AND_S3
async def test_conditional_requests(service: Service) -> None:
    await _put(service, "cam/1000.ts", SEGMENT)
    bucket = service.bucket()
    meta = await sync(bucket.head_object, "cam/1000.ts")
    etag = f'"{meta.etag}"'
    modified = meta.headers["Last-Modified"]
    with pytest.raises(oss2.exceptions.NotModified):
        await sync(bucket.get_object, "cam/1000.ts", headers={"If-None-Match": etag})
    with pytest.raises(oss2.exceptions.NotModified):
        await sync(bucket.get_object, "cam/1000.ts", headers={"If-Modified-Since": modified})
    with pytest.raises(oss2.exceptions.PreconditionFailed):
        await sync(bucket.get_object, "cam/1000.ts", headers={"If-Match": '"0000"'})
    with pytest.raises(oss2.exceptions.PreconditionFailed):
        await sync(bucket.get_object, "cam/1000.ts",
                   headers={"If-Unmodified-Since": "Sat, 01 Jan 2000 00:00:00 GMT"})  # fmt: skip
    with pytest.raises(oss2.exceptions.NotModified):
        await sync(bucket.head_object, "cam/1000.ts", headers={"If-None-Match": etag})
    both = {"If-Match": etag, "If-Modified-Since": "Sat, 01 Jan 2000 00:00:00 GMT"}
    ok = await sync(bucket.get_object, "cam/1000.ts", headers=both)
    assert await sync(ok.read) == SEGMENT
    # An invalid date in If-Modified-Since is ignored (OSS API reference, GetObject).
    ok = await sync(bucket.get_object, "cam/1000.ts", headers={"If-Modified-Since": "yesterday"})
    assert ok.status == 200


@ON_LOCAL_AND_S3
async def test_head_and_missing_objects(service: Service) -> None:
    await _put(service, "cam/1000.ts", SEGMENT)
    bucket = service.bucket()
    meta = await sync(bucket.head_object, "cam/1000.ts")
    assert (meta.content_length, meta.content_type, meta.object_type) == (
        len(SEGMENT), "video/MP2T", "Normal",
    )  # fmt: skip
    assert await sync(bucket.object_exists, "cam/1000.ts")
    assert not await sync(bucket.object_exists, "cam/nope.ts")
    with pytest.raises(oss2.exceptions.NoSuchKey):
        await sync(bucket.get_object, "cam/nope.ts")
    with pytest.raises(oss2.exceptions.NoSuchKey):
        await sync(bucket.head_object, "cam/nope.ts")  # via the x-oss-err header
    with pytest.raises(oss2.exceptions.NoSuchKey):
        await sync(bucket.get_object, "a//b")  # a name our store cannot hold
    with pytest.raises(oss2.exceptions.NoSuchBucket):
        await sync(service.bucket("nobucket").get_object, "x")


@ON_LOCAL_AND_S3
async def test_delete_object_and_batch_delete(service: Service) -> None:
    for i in range(5):
        await _put(service, f"cam/{i}.ts", b"x")
    bucket = service.bucket()
    assert (await sync(bucket.delete_object, "cam/0.ts")).status == 204
    assert (await sync(bucket.delete_object, "cam/0.ts")).status == 204  # absent: 204 too
    result = await sync(bucket.batch_delete_objects, ["cam/1.ts", "cam/2.ts", "cam/missing.ts"])
    assert sorted(result.deleted_keys) == ["cam/1.ts", "cam/2.ts", "cam/missing.ts"]
    left = await sync(lambda: [o.key for o in oss2.ObjectIterator(bucket)])
    assert left == ["cam/3.ts", "cam/4.ts"]


@ON_LOCAL_AND_S3
async def test_list_objects_paging_delimiter_and_iterator(service: Service) -> None:
    keys = [f"cam/{i:04d}.ts" for i in range(150)] + ["cam/playlist.m3u8", "other/a.ts", "top"]
    for key in keys:
        await _put(service, key, b"k")
    bucket = service.bucket()
    page = await sync(bucket.list_objects)
    assert page.is_truncated and len(page.object_list) == 100
    assert page.next_marker == keys[99]
    all_keys = await sync(lambda: [o.key for o in oss2.ObjectIterator(bucket, max_keys=33)])
    assert all_keys == sorted(keys)
    top = await sync(bucket.list_objects, "", "/")
    assert top.prefix_list == ["cam/", "other/"]
    assert [o.key for o in top.object_list] == ["top"]
    under = await sync(lambda: [o.key for o in oss2.ObjectIterator(bucket, prefix="other/")])
    assert under == ["other/a.ts"]
    info = page.object_list[0]
    assert (info.size, info.type, info.storage_class) == (1, "Normal", "Standard")
    stored = await service.storages[PRIVATE].head(info.key)
    assert stored is not None and info.etag == stored.etag


@ON_LOCAL_AND_S3
async def test_list_objects_with_keys_that_need_url_encoding(service: Service) -> None:
    keys = ["a&b/x.ts", "plus+sign/1.ts", "sp ace/é.ts", "lt<gt>/1.ts"]
    for key in keys:
        await _put(service, key, b"k")
    bucket = service.bucket()
    listed = await sync(lambda: [o.key for o in oss2.ObjectIterator(bucket)])
    assert listed == sorted(keys)
    grouped = await sync(bucket.list_objects, "", "/", "", 2)
    assert grouped.prefix_list == ["a&b/", "lt<gt>/"] and grouped.is_truncated
    assert await sync(bucket.object_exists, "plus+sign/1.ts")


@ON_LOCAL_AND_S3
async def test_signed_url_get_of_segment_and_playlist(
    service: Service, http: aiohttp.ClientSession
) -> None:
    await _put(service, "cam/1000.ts", SEGMENT)
    await _put(service, "cam/playlist.m3u8", PLAYLIST)
    bucket = service.bucket()
    for key, body in (("cam/1000.ts", SEGMENT), ("cam/playlist.m3u8", PLAYLIST)):
        url = bucket.sign_url("GET", key, 60)
        async with http.get(url) as r:
            assert r.status == 200
            assert await r.read() == body
        async with http.get(url.replace("Signature=", "Signature=x")) as r:
            assert r.status == 403
            assert "<Code>SignatureDoesNotMatch</Code>" in await r.text()
    with pytest.raises(oss2.exceptions.AccessDenied):
        await sync(bucket.get_object_with_url, bucket.sign_url("GET", "cam/1000.ts", -10))
    got = await sync(bucket.get_object_with_url, bucket.sign_url("GET", "cam/1000.ts", 60))
    assert await sync(got.read) == SEGMENT


async def test_response_overrides_on_signed_requests(
    service: Service, http: aiohttp.ClientSession
) -> None:
    await _put(service, "cam/1000.ts", SEGMENT)
    params = {
        "response-content-type": "application/octet-stream",
        "response-content-disposition": 'attachment; filename="clip.ts"',
        "response-cache-control": "no-cache",
        "response-expires": "Thu, 01 Feb 2012 17:00:00 GMT",
        "response-content-language": "zh",
    }
    url = service.bucket().sign_url("GET", "cam/1000.ts", 60, params=params)
    async with http.get(url) as r:
        assert r.status == 200
        assert r.headers["Content-Type"] == "application/octet-stream"
        assert r.headers["Content-Disposition"] == 'attachment; filename="clip.ts"'
        assert r.headers["Cache-Control"] == "no-cache"
        assert r.headers["Expires"] == "Thu, 01 Feb 2012 17:00:00 GMT"
        assert r.headers["Content-Language"] == "zh"
    result = await sync(service.bucket().get_object, "cam/1000.ts",
                        params={"response-content-type": "text/plain"})  # fmt: skip
    assert result.headers["Content-Type"] == "text/plain"


@ON_LOCAL_AND_S3
async def test_hls_sign_playlist_in_private_bucket(
    service: Service, http: aiohttp.ClientSession
) -> None:
    await _put(service, "cam/playlist.m3u8", PLAYLIST)
    await _put(service, "cam/1000.ts", b"first")
    await _put(service, "cam/1005.ts", b"second")
    bucket = service.bucket()
    url = bucket.sign_url("GET", "cam/playlist.m3u8", 600, params={"x-oss-process": "hls/sign"})
    expires = parse_qs(urlsplit(url).query)["Expires"][0]
    async with http.get(url) as r:
        assert r.status == 200
        assert r.headers["Content-Type"] == "application/x-mpegURL"
        text = await r.text()
    uris = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert [u.split("?")[0] for u in uris] == [f"/{PRIVATE}/cam/1000.ts", f"/{PRIVATE}/cam/1005.ts"]
    bodies = []
    for uri in uris:
        query = parse_qs(urlsplit(uri).query)
        assert query["OSSAccessKeyId"] == [AK] and query["Expires"] == [expires]
        # Exactly what oss2 would sign for that object.
        async with http.get(urljoin(url, uri)) as r:
            assert r.status == 200
            bodies.append(await r.read())
    assert bodies == [b"first", b"second"]
    # Unsigned segment URLs are refused in a private bucket.
    async with http.get(urljoin(url, "1000.ts")) as r:
        assert r.status == 403
    # x-oss-process is part of the signed resource: dropping it breaks the signature.
    async with http.get(url.replace("x-oss-process=hls%2Fsign&", "")) as r:
        assert r.status == 403


async def test_hls_sign_refusals(service: Service) -> None:
    await _put(service, "cam/1000.ts", b"x")
    await _put(service, "cam/playlist.m3u8", PLAYLIST)
    bucket = service.bucket()
    with pytest.raises(oss2.exceptions.InvalidArgument):
        await sync(bucket.get_object, "cam/1000.ts", process="hls/sign")
    with pytest.raises(oss2.exceptions.InvalidArgument):
        await sync(bucket.get_object, "cam/playlist.m3u8", process="image/resize,w_100")
    # Header-signed: segments are signed with an Expires we choose.
    result = await sync(bucket.get_object, "cam/playlist.m3u8", process="hls/sign")
    text = (await sync(result.read)).decode()
    assert f"/{PRIVATE}/cam/1000.ts?OSSAccessKeyId=" in text


@ON_LOCAL_AND_S3
async def test_public_read_bucket_plays_anonymously(service: Service) -> None:
    await _put(service, "cam/playlist.m3u8", PLAYLIST, PUBLIC_READ)
    anonymous = service.bucket(PUBLIC_READ, anonymous=True)
    result = await sync(anonymous.get_object, "cam/playlist.m3u8")
    assert await sync(result.read) == PLAYLIST
    signed = await sync(anonymous.get_object, "cam/playlist.m3u8", process="hls/sign")
    assert await sync(signed.read) == PLAYLIST  # nothing to sign with, nothing needed
    with pytest.raises(oss2.exceptions.AccessDenied):
        await sync(anonymous.delete_object, "cam/playlist.m3u8")
    with pytest.raises(oss2.exceptions.AccessDenied):
        await sync(anonymous.list_live_channel)
    with pytest.raises(oss2.exceptions.AccessDenied):
        await sync(service.bucket(PRIVATE, anonymous=True).get_object, "cam/playlist.m3u8")


async def test_bucket_acl_get_put(service: Service) -> None:
    bucket = service.bucket()
    assert (await sync(bucket.get_bucket_acl)).acl == "private"
    await sync(bucket.put_bucket_acl, oss2.BUCKET_ACL_PUBLIC_READ)
    assert (await sync(bucket.get_bucket_acl)).acl == "public-read"
    await _put(service, "x.ts", b"now public")
    got = await sync(service.bucket(anonymous=True).get_object, "x.ts")
    assert await sync(got.read) == b"now public"
    with pytest.raises(oss2.exceptions.InvalidArgument):
        await sync(bucket.put_bucket_acl, "world-writable")
    with pytest.raises(oss2.exceptions.AccessDenied):
        await sync(service.bucket(PUBLIC_RW, anonymous=True).get_bucket_acl)


async def test_public_read_write_bucket_allows_anonymous_channels(service: Service) -> None:
    anonymous = service.bucket(PUBLIC_RW, anonymous=True)
    await sync(anonymous.create_live_channel, "open1", oss2.models.LiveChannelInfo())
    assert [c.name for c in (await sync(anonymous.list_live_channel)).channels] == ["open1"]
    await sync(anonymous.delete_live_channel, "open1")


async def test_list_buckets(service: Service) -> None:
    result = await sync(service.service().list_buckets)
    assert sorted(b.name for b in result.buckets) == sorted([PRIVATE, PUBLIC_READ, PUBLIC_RW])
    assert not result.is_truncated
    page = await sync(service.service().list_buckets, "", "", 2)
    assert page.is_truncated and len(page.buckets) == 2
    all_names = await sync(
        lambda: [b.name for b in oss2.BucketIterator(service.service(), max_keys=1)]
    )
    assert all_names == sorted([PRIVATE, PUBLIC_READ, PUBLIC_RW])
    with pytest.raises(oss2.exceptions.AccessDenied):
        await sync(service.service(anonymous=True).list_buckets)
