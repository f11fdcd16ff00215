"""The publish decision: may this RTMP publish start, and where does it go?

In order: the URL names a bucket and channel (publish.resolve), the bucket exists here, the
signature holds unless the bucket is public-read-write (OSS API reference, LiveChannel
overview), the channel exists and is enabled, its playlist name is valid, and no one else
publishes to it (the store's atomic `start_push`, which holds across workers and machines).
Every refusal is a `Refusal` carrying the onStatus code and the description the publisher
reads.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from livechannel.api.channel_config import check_playlist_name
from livechannel.auth import signing
from livechannel.config import Config
from livechannel.errors import (
    ChannelStillLive,
    InvalidArgument,
    LiveChannelDisabled,
    NoSuchLiveChannel,
    OssError,
)
from livechannel.ingest import publish
from livechannel.storage.base import ObjectStorage
from livechannel.store.base import Acl, ChannelConfig, MetadataStore, Push

BAD_NAME = "NetStream.Publish.BadName"
REJECTED = "NetStream.Publish.Rejected"
# What a refused publisher reads in onStatus `description`, by the refusal's type.
REFUSAL_TEXT: dict[type[OssError], str] = {
    NoSuchLiveChannel: "no such channel",
    LiveChannelDisabled: "channel disabled",
    ChannelStillLive: "channel is already live",
}


# The refusal's reason as a metrics label: a few fixed words, never client text.
REFUSAL_REASON: dict[type[OssError], str] = {
    NoSuchLiveChannel: "no_channel",
    LiveChannelDisabled: "disabled",
    ChannelStillLive: "already_live",
    InvalidArgument: "invalid",
}


# (bucket, channel, URL parameters) -> None to allow, else the refusal's description.
Ask = Callable[[str, str, Mapping[str, str]], Awaitable[str | None]]


class Refusal(Exception):
    def __init__(
        self, code: str, description: str, bucket: str = "", channel: str = "", reason: str = ""
    ) -> None:
        super().__init__(description)
        self.code, self.description = code, description
        self.bucket, self.channel = bucket, channel
        self.reason = reason or "refused"  # REFUSAL_REASON's words, "bad_url", "auth", ...


@dataclass(frozen=True, slots=True)
class Admission:
    push: Push  # started in the store: this publisher owns the channel now
    storage: ObjectStorage
    config: ChannelConfig
    playlist_name: str


async def admit(
    app: str,
    stream_name: str,
    tc_url: str,
    *,
    peer: str,
    config: Config,
    store: MetadataStore,
    storages: Mapping[str, ObjectStorage],
    credentials: Mapping[str, str],
    worker: str,
    now_ms: int,
    ask: Ask | None = None,
) -> Admission:
    """Start the push or raise Refusal (store failures propagate: an internal error).
    `ask` (the operator's on_publish hook) has the last word, before the channel is claimed:
    it returns None to allow, or the description of its refusal."""
    try:
        target = publish.resolve(
            app, stream_name, tc_url, domain=config.domain, default_bucket=config.default_bucket
        )
    except publish.PublishUrlError as e:
        raise Refusal(BAD_NAME, str(e), reason="bad_url") from None
    bucket_name, channel_name = target.bucket, target.channel
    try:
        bucket = await store.get_bucket(bucket_name)
        storage = storages.get(bucket_name)
        if bucket is None or storage is None:
            raise Refusal(BAD_NAME, "no such bucket", bucket_name, channel_name, "no_bucket")
        if bucket.acl != Acl.PUBLIC_READ_WRITE:
            signing.check_rtmp_publish(
                target.params, bucket_name, channel_name, credentials, now_ms // 1000
            )
        channel = await store.get_channel(bucket_name, channel_name)
        if channel is None:
            raise NoSuchLiveChannel("no such channel")
        playlist = target.playlist_name or channel.config.playlist_name
        check_playlist_name(playlist, "playlistName")  # the same rules as PutLiveChannel
        if ask is not None:
            denied = await ask(bucket_name, channel_name, target.params)
            if denied is not None:
                raise Refusal(REJECTED, denied, bucket_name, channel_name, "webhook")
        push = await store.start_push(
            bucket_name, channel_name, peer, worker, now_ms, config.advertise_url
        )
    except OssError as e:
        text = REFUSAL_TEXT.get(type(e), e.message)
        code = BAD_NAME if isinstance(e, NoSuchLiveChannel | InvalidArgument) else REJECTED
        reason = REFUSAL_REASON.get(type(e), "auth")  # the rest: signature, expiry, ACL
        raise Refusal(code, text, bucket_name, channel_name, reason) from None
    return Admission(push, storage, channel.config, playlist)
