"""`x-oss-process=hls/sign`: a playlist whose segment URIs carry their own signatures. Sans-IO.

A player given one signed playlist URL of a private bucket cannot sign the segment URLs
itself, so each relative segment URI becomes
`<bucket path>/<segment key>?OSSAccessKeyId=..&Expires=..&Signature=..` (a GET signature of the
segment's key, same key id and Expires as the playlist's URL). The URI is rewritten as an
absolute path, not left relative: `oss2.sign_url` encodes the `/` of `<channel>/x.m3u8` as
`%2F`, and against such a URL a relative `1000.ts` would resolve to the bucket's root. The
bucket path is "" (virtual-host style) or "/<bucket>" (path style), as the player addressed
the playlist. Absolute URIs, URIs with a query, URIs leaving the bucket and URIs inside tag
attributes (EXT-X-KEY, EXT-X-MAP; our playlists have none) are left as they are.
"""

from __future__ import annotations

import posixpath
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
    out: list[str] = []
    for line in text.splitlines(keepends=True):
        body = line.rstrip("\r\n")
        uri = body.strip()
        key = _segment_key(uri, playlist_dir) if uri and not uri.startswith("#") else None
        if key is None:
            out.append(line)
            continue
        params = sign_url_params(access_key_id, secret, "GET", bucket, key, expires_s)
        query = "&".join(f"{name}={quote(value, safe='')}" for name, value in params)
        path = f"{bucket_path}/{quote(key, safe='/')}"
        out.append(f"{path}?{query}{line[len(body) :]}")
    return "".join(out)
