"""Typed errors that carry their OSS error code and HTTP status.

Anything below the HTTP edge raises these; the one error middleware in `api/` renders them
(the `<Error>` body of OSS API reference, access control). Code never branches on message
text, only on the type.
"""

from __future__ import annotations


class OssError(Exception):
    """An error with an OSS code. `details` become extra child elements of `<Error>`."""

    status: int = 400
    code: str = "InvalidArgument"
    close_connection: bool = False  # answer, then close (the request cannot be read to its end)

    def __init__(self, message: str, **details: str) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class InvalidArgument(OssError):
    status, code = 400, "InvalidArgument"


class MalformedXML(OssError):
    status, code = 400, "MalformedXML"


class InvalidObjectName(OssError):
    status, code = 400, "InvalidObjectName"


class InvalidBucketName(OssError):
    status, code = 400, "InvalidBucketName"


class RequestTimeout(OssError):
    """The request body did not arrive in time (a trickled body holds a request slot)."""

    status, code = 400, "RequestTimeout"
    close_connection = True  # the rest of the body may still come: the connection is spent


class EntityTooLarge(OssError):
    status, code = 400, "EntityTooLarge"


class AccessDenied(OssError):
    status, code = 403, "AccessDenied"


class SignatureDoesNotMatch(OssError):
    status, code = 403, "SignatureDoesNotMatch"


class InvalidAccessKeyId(OssError):
    status, code = 403, "InvalidAccessKeyId"


class RequestTimeTooSkewed(OssError):
    status, code = 403, "RequestTimeTooSkewed"


class NoSuchBucket(OssError):
    status, code = 404, "NoSuchBucket"


class NoSuchKey(OssError):
    status, code = 404, "NoSuchKey"


class NoSuchLiveChannel(OssError):
    status, code = 404, "NoSuchLiveChannel"


class MethodNotAllowed(OssError):
    status, code = 405, "MethodNotAllowed"


class ChannelStillLive(OssError):
    status, code = 409, "ChannelStillLive"


class LiveChannelDisabled(OssError):
    status, code = 409, "LiveChannelDisabled"


class PreconditionFailed(OssError):
    status, code = 412, "PreconditionFailed"


class InvalidRange(OssError):
    status, code = 416, "InvalidRange"


class NotImplementedOss(OssError):
    status, code = 501, "NotImplemented"


class ServiceUnavailable(OssError):
    status, code = 503, "ServiceUnavailable"


class StorageError(Exception):
    """The object store failed (disk full, permission, network). Retryable unless `permanent`."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


# The store's refusals, worded once for every MetadataStore implementation.
def no_channel(name: str) -> NoSuchLiveChannel:
    return NoSuchLiveChannel("the live channel does not exist", ChannelName=name)


def still_live(name: str) -> ChannelStillLive:
    return ChannelStillLive("the channel is being pushed to", ChannelName=name)


def no_bucket(name: str) -> NoSuchBucket:
    return NoSuchBucket("the bucket does not exist", BucketName=name)
