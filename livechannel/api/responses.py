"""Building responses: XML bodies, empty answers, and the OSS `<Error>` body.

The error body's shape follows the examples of OSS API reference, access control and LiveChannel.
"""

from __future__ import annotations

import base64

from aiohttp import web

from livechannel.api import xml
from livechannel.errors import OssError

XML_CONTENT_TYPE = "application/xml"


def xml_response(root: xml.XmlNode, status: int = 200) -> web.Response:
    return web.Response(status=status, body=xml.render(root), content_type=XML_CONTENT_TYPE)


def empty_response(status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    response = web.Response(status=status, headers=headers)
    response.headers["Content-Length"] = "0"
    return response


def error_xml(error: OssError, request_id: str, host_id: str) -> bytes:
    """`<Error>` with Code, Message, RequestId, HostId, then the error's detail elements."""
    children: list[xml.XmlNode] = [
        ("Code", error.code),
        ("Message", error.message),
        ("RequestId", request_id),
        ("HostId", host_id),
    ]
    children.extend((name, value) for name, value in error.details.items())
    return xml.render(("Error", children))


def error_response(error: OssError, method: str, request_id: str, host_id: str) -> web.Response:
    """The error as OSS sends it; a HEAD answer has no body, so the XML rides in `x-oss-err`."""
    body = error_xml(error, request_id, host_id)
    if method == "HEAD":
        response = web.Response(status=error.status)
        response.headers["x-oss-err"] = base64.b64encode(body).decode("ascii")
        response.headers["Content-Type"] = XML_CONTENT_TYPE
        response.headers["Content-Length"] = str(len(body))
        return response
    return web.Response(status=error.status, body=body, content_type=XML_CONTENT_TYPE)
