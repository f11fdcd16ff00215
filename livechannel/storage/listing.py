"""ListObjects paging over keys that arrive in ascending order.

OSS API reference, GetBucket (ListObjects).

Order is the byte order of the UTF-8 names; UTF-8 preserves code point order, so Python's str
comparison is that order. `marker` is exclusive. With a delimiter, keys sharing
`prefix + ... + delimiter` collapse into one common prefix, which counts toward max-keys like a
key. A common prefix is returned only if it sorts after the marker, so continuing from a
NextMarker that was a common prefix does not return it again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from livechannel.errors import InvalidArgument
from livechannel.storage.base import ListResult, ObjectInfo


class ListState:
    """Shared by a key source and `collect`: the common prefix being collapsed right now, so
    the source may skip everything under it (a whole directory, for the local store)."""

    __slots__ = ("skip_prefix",)

    def __init__(self) -> None:
        self.skip_prefix = ""

    def skipped(self, key_prefix: str) -> bool:
        return bool(self.skip_prefix) and key_prefix.startswith(self.skip_prefix)


def collect(
    keys: Iterable[str],
    info: Callable[[str], ObjectInfo | None],
    prefix: str,
    marker: str,
    max_keys: int,
    delimiter: str,
    state: ListState | None = None,
) -> ListResult:
    """Page `keys` (ascending). `info` returns None for a key that vanished meanwhile."""
    if max_keys < 1:
        raise InvalidArgument("max-keys must be at least 1", ArgumentName="max-keys")
    state = state if state is not None else ListState()
    objects: list[ObjectInfo] = []
    common_prefixes: list[str] = []
    last = ""
    truncated = False
    for key in keys:
        if not key.startswith(prefix):
            if key > prefix:
                break  # keys with the prefix are contiguous and all sort after it
            continue
        if key <= marker:
            continue
        entry: ObjectInfo | str | None
        if delimiter and (cut := key.find(delimiter, len(prefix))) >= 0:
            entry = key[: cut + len(delimiter)]
            if entry <= marker or entry == state.skip_prefix:
                continue
        else:
            entry = info(key)
            if entry is None:
                continue
        if len(objects) + len(common_prefixes) == max_keys:
            truncated = True
            break
        if isinstance(entry, str):
            common_prefixes.append(entry)
            state.skip_prefix = entry
            last = entry
        else:
            objects.append(entry)
            last = key
    return ListResult(
        objects=objects,
        common_prefixes=common_prefixes,
        is_truncated=truncated,
        next_marker=last if truncated else "",
    )
