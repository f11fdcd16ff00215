"""Object keys: which names an object store accepts (defence in depth below the API's checks).

OSS allows almost any UTF-8 name of 1-1023 bytes (OSS API reference, PutObject,
InvalidObjectName). Our stores map
"/"-separated keys to paths, so additionally refuse anything that could name a place outside
the bucket or alias another key: `.`/`..` segments, empty segments (a leading "/" or "//"),
backslashes (a separator elsewhere) and NUL (ends a C path).
"""

from __future__ import annotations

from livechannel.errors import InvalidObjectName

# OSS API reference, PutObject: "Object key longer than 1023 bytes" is InvalidObjectName.
MAX_KEY_BYTES = 1023
# NAME_MAX of Linux filesystems: the local store keeps a key segment as one file name.
MAX_SEGMENT_BYTES = 255
# Temp files of the local store's in-flight puts: never listed, so no key may be named so.
TEMP_PREFIX = ".livechannel-tmp-"
_ALIASING_SEGMENTS = frozenset({".", ".."})  # path segments that point elsewhere


def key_segments(key: str) -> list[str]:
    """Validate `key` and return its "/"-separated segments; raise InvalidObjectName."""
    try:
        size = len(key.encode("utf-8"))
    except UnicodeEncodeError:
        raise InvalidObjectName("object name is not valid UTF-8") from None
    if size == 0:
        raise InvalidObjectName("object name is empty")
    if size > MAX_KEY_BYTES:
        raise InvalidObjectName(f"object name is longer than {MAX_KEY_BYTES} bytes")
    if "\x00" in key:
        raise InvalidObjectName("object name contains NUL")
    if "\\" in key:
        raise InvalidObjectName("object name contains a backslash")
    segments = key.split("/")
    for segment in segments:
        if segment == "":
            raise InvalidObjectName("object name has an empty path segment")
        if segment in _ALIASING_SEGMENTS:
            raise InvalidObjectName("object name has a '.' or '..' path segment")
    return segments


def check_file_name(segment: str, key: str) -> None:
    """The local store's rule for one key segment (a file name): at most MAX_SEGMENT_BYTES
    bytes, and not in the temp files' namespace. The API applies it to names the service
    itself turns into a file name (PlaylistName), so that a name it accepts is storable."""
    if len(segment.encode("utf-8", "surrogatepass")) > MAX_SEGMENT_BYTES:
        raise InvalidObjectName(f"a path segment is longer than {MAX_SEGMENT_BYTES} bytes", Key=key)
    if segment.startswith(TEMP_PREFIX):
        raise InvalidObjectName(f"{TEMP_PREFIX!r} names are reserved", Key=key)
