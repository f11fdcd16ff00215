"""The one place errors become responses, and the headers every response carries.

OssError -> its status and `<Error>` body; StorageError -> 503 ServiceUnavailable (retryable)
or 500; anything unexpected -> 500 InternalError, logged with its traceback. Every response
(errors, aiohttp's own, streamed objects) gets `x-oss-request-id`, `Date` and `Server`.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Awaitable, Callable

from aiohttp import web

from livechannel.api.addressing import bucket_from_host
from livechannel.api.context import ApiContext
from livechannel.api.cors import add_cors_headers
from livechannel.api.dates import http_date
from livechannel.api.responses import error_response
from livechannel.errors import OssError, ServiceUnavailable, StorageError
from livechannel.ops import metrics

log = logging.getLogger("livechannel.api")

REQUEST_ID = web.RequestKey("livechannel.request_id", str)  # the id we answer with
SERVER_NAME = "livechannel"
OPS_PREFIX = "/-/"  # the operators' routes: `-` is no valid bucket name, so no path collides


class InternalError(OssError):
    status, code = 500, "InternalError"


class StreamAborted(Exception):
    """A body failed after its headers were sent: no error answer is possible any more, so
    aiohttp closes the connection and the client sees a short body (Content-Length)."""


def new_request_id() -> str:
    """24 upper-case hex digits like OSS's; 96 random bits make collisions irrelevant."""
    return secrets.token_hex(12).upper()


def _host_id(request: web.BaseRequest) -> str:
    return request.headers.get("Host", "") or request.host


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
OPERATION = web.RequestKey("livechannel.operation", str)  # the API operation, for metrics
# Requests that never reach an API operation, by path (a bounded label set).
_OPS_ROUTES = {"/-/status": "Status", "/-/metrics": "Metrics", "/-/healthz": "Healthz",
               "/-/readyz": "Readyz"}  # fmt: skip


@web.middleware
async def metrics_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Count and time every request (livechannel.ops.metrics), by operation and status."""
    start = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as e:
        status = e.status
        raise
    finally:
        operation = request.get(OPERATION) or _OPS_ROUTES.get(request.path, "Other")
        metrics.HTTP_REQUESTS.labels(operation, str(status)).inc()
        metrics.HTTP_SECONDS.labels(operation).observe(time.perf_counter() - start)


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    request_id = new_request_id()
    request[REQUEST_ID] = request_id
    try:
        response = await handler(request)
    except OssError as e:
        response = error_response(e, request.method, request_id, _host_id(request))
        if e.close_connection:
            response.force_close()
    except StorageError as e:
        log.warning("storage failed rid=%s %s %s: %s", request_id, request.method, request.path, e)
        error: OssError = (
            InternalError("the object store failed")
            if e.permanent
            else ServiceUnavailable("the object store is unavailable; retry")
        )
        response = error_response(error, request.method, request_id, _host_id(request))
    except (web.HTTPException, StreamAborted):
        raise  # aiohttp's own answers; or too late to answer (headers already sent)
    except Exception:
        log.exception("unexpected error rid=%s %s %s", request_id, request.method, request.path)
        response = error_response(
            InternalError("we encountered an internal error; please try again"),
            request.method,
            request_id,
            _host_id(request),
        )
    # The path only: the query may carry a Signature, which is never logged. Successes are
    # debug-level: players fetch a segment every few seconds.
    level = logging.DEBUG if response.status < 400 else logging.INFO
    log.log(level, "%s %s -> %d rid=%s", request.method, request.path, response.status, request_id,
            extra={"request_id": request_id, "status": response.status})  # fmt: skip
    return response


def make_common_headers(
    ctx: ApiContext,
) -> Callable[[web.Request, web.StreamResponse], Awaitable[None]]:
    async def common_headers(request: web.Request, response: web.StreamResponse) -> None:
        request_id = request.get(REQUEST_ID) or new_request_id()
        response.headers["x-oss-request-id"] = request_id
        response.headers["Date"] = http_date(ctx.now_ms())
        response.headers["Server"] = SERVER_NAME
        # No CORS on the operators' routes (/-/status, /-/metrics, health): a web page must
        # not read them through a visitor's browser. A virtual-hosted `/-/...` is an object.
        if not request.path.startswith(OPS_PREFIX) or bucket_from_host(
            request.headers.get("Host", ""), ctx.urls.domain
        ):
            add_cors_headers(request, response)

    return common_headers
