"""A channel's live playlist as the rest of the service sees it: where it is stored, how it
is windowed, its TARGETDURATION, and its rewrite with #EXT-X-ENDLIST once the push is over."""

from __future__ import annotations

from dataclasses import dataclass

from livechannel.hls.playlist import render, target_duration_s
from livechannel.hls.window import LiveWindow
from livechannel.storage.base import ObjectStorage, content_type_for
from livechannel.store.base import MetadataStore


def live_target_s(frag_duration_s: int, max_segment_s: int) -> int:
    """A channel's live TARGETDURATION, from its FragDuration and forced-cut bound (the rule
    is `hls.playlist.target_duration_s`'s). The one place it is worked out, for the pushes
    and for the playlists ended after a restart."""
    return target_duration_s(frag_duration_s, max_segment_s * 1000)


@dataclass(frozen=True, slots=True)
class LivePlaylist:
    """A channel's live playlist: where it is stored and how it is windowed; what rewriting
    it with #EXT-X-ENDLIST needs."""

    storage: ObjectStorage
    bucket: str
    channel: str
    name: str
    frag_count: int
    target_s: int

    @property
    def key(self) -> str:
        return f"{self.channel}/{self.name}"


async def end_playlist(store: MetadataStore, playlist: LivePlaylist) -> None:
    """Rewrite a channel's live playlist with #EXT-X-ENDLIST (publisher gone, grace passed)."""
    p = playlist
    window = await LiveWindow.load(store, p.bucket, p.channel, p.frag_count, p.target_s)
    if not window.segments:
        return
    rendered = render(window.playlist(ended=True)).encode()
    await p.storage.put(p.key, rendered, content_type_for(p.key))
