"""One API call after addressing and authentication: what every handler receives."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from livechannel.api.addressing import Target
from livechannel.api.auth import Identity, authenticate
from livechannel.api.context import ApiContext
from livechannel.errors import NoSuchBucket
from livechannel.storage.base import ObjectStorage
from livechannel.store.base import Acl


@dataclass(frozen=True, slots=True)
class Call:
    request: web.Request
    ctx: ApiContext
    target: Target
    identity: Identity
    acl: Acl  # the bucket's ACL (PRIVATE for the service itself)

    @property
    def bucket(self) -> str:
        """The bucket; only operations on a bucket are dispatched to handlers that ask."""
        assert self.target.bucket is not None
        return self.target.bucket

    @property
    def storage(self) -> ObjectStorage:
        storage = self.ctx.storages.get(self.bucket)
        if storage is None:
            raise NoSuchBucket("the bucket does not exist")
        return storage

    def now_ms(self) -> int:
        return self.ctx.now_ms()


def identify(request: web.Request, ctx: ApiContext, target: Target) -> Identity:
    """Who sends `request` (its signature checked against ctx's keys and clock)."""
    return authenticate(
        request.method,
        request.headers,
        request.headers.items(),
        target,
        ctx.credentials,
        ctx.now_ms() // 1000,
        ctx.region,
    )
