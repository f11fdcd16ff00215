"""`x-oss-process=hls/sign`: a playlist whose segment URIs carry their own signatures. Sans-IO.

A player given one signed playlist URL of a private bucket cannot sign the segment URLs
itself, so each relative segment URI becomes
`<bucket path>/<segment key>?OSSAccessKeyId=..&Expires=..&Signature=..` (a GET signature of the
segment's key, same key id and Expires as the playlist's URL). The URI is rewritten as an
absolute path, not left relative: `oss2.sign_url` encodes the `/` of `<channel>/x.m3u8` as
`%2F`, and against such a URL a relative `1000.ts` would resolve to the bucket's root. The
bucket path is "" (virtual-host style) or "/<bucket>" (path style), as the player addressed
the playlist. The URI attribute of the tags that name media (EXT-X-MAP, and LL-HLS's
EXT-X-PART and EXT-X-PRELOAD-HINT) is signed the same way. Absolute URIs, URIs with a query,
URIs leaving the bucket and other tags' attributes (EXT-X-KEY) are left as they are.
"""

from __future__ import annotations

import posixpath
import re
from urllib.parse import quote, unquote

from livechannel.auth.signing import sign_url_params


def _segment_key(uri: str, playlist_dir: str) -> str | None:
    if "://" in uri or uri.startswith("/") or "?" in uri or "#" in uri:
        return None
    try:
        path = unquote(uri, errors="strict")
    except UnicodeDecodeError:
        return None
    key = posixpath.normpath(posixpath.join(playlist_dir, path)) if playlist_dir else path
    key = posixpath.normpath(key)
    if key in (".", "..") or key.startswith("../") or key.startswith("/"):
        return None
    return key


# Tags whose URI attribute names a media object of the bucket (RFC 8216bis 4.4.4.5, 4.4.4.9,
# 4.4.5.3).
MEDIA_URI_TAGS = ("#EXT-X-MAP:", "#EXT-X-PART:", "#EXT-X-PRELOAD-HINT:")
URI_ATTRIBUTE = re.compile(r'(?<![A-Z-])URI="([^"]*)"')


def sign_playlist(
    text: str,
    playlist_key: str,
    bucket: str,
    bucket_path: str,
    access_key_id: str,
    secret: str,
    expires_s: int,
) -> str:
    playlist_dir = playlist_key.rpartition("/")[0]

    def signed(uri: str) -> str | None:
        key = _segment_key(uri, playlist_dir)
        if key is None:
            return None
        params = sign_url_params(access_key_id, secret, "GET", bucket, key, expires_s)
        query = "&".join(f"{name}={quote(value, safe='')}" for name, value in params)
        return f"{bucket_path}/{quote(key, safe='/')}?{query}"

    def sign_attribute(match: re.Match[str]) -> str:
        url = signed(match.group(1)) if match.group(1) else None
        return match.group(0) if url is None else f'URI="{url}"'

    out: list[str] = []
    for line in text.splitlines(keepends=True):
        body = line.rstrip("\r\n")
        uri = body.strip()
        if uri.startswith(MEDIA_URI_TAGS):
            out.append(URI_ATTRIBUTE.sub(sign_attribute, line))
            continue
        url = signed(uri) if uri and not uri.startswith("#") else None
        out.append(line if url is None else f"{url}{line[len(body) :]}")
    return "".join(out)
