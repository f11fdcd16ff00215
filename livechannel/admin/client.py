"""A small blocking client of our own OSS-dialect API, for the admin commands.

Requests are signed with OSS V1 header signatures (OSS API reference, signature in the
header) by livechannel.auth.signing, the code the service verifies them with; path-style
addressing (`http://host:port/<bucket>/<channel>?live`), which every deployment accepts.
Responses are the API's own small XML documents.
"""

from __future__ import annotations

import email.utils
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import quote, urlencode

from livechannel.auth import signing

REQUEST_TIMEOUT_S = 15.0  # one API call; the service answers in milliseconds when it is up
MAX_RESPONSE_BYTES = 16 * 1024 * 1024  # a page of 1000 channels is ~1 MB of XML


class ApiError(Exception):
    """The service answered with an error (its OSS code and message), or did not answer."""


@dataclass(frozen=True, slots=True)
class Client:
    endpoint: str  # http://host:port
    bucket: str
    key_id: str
    secret: str

    def call(
        self,
        method: str,
        key: str,
        query: Sequence[tuple[str, str | None]] = (),
        body: bytes = b"",
        content_type: str = "",
    ) -> ET.Element | None:
        """One signed request; the parsed XML answer (None for an empty one)."""
        date = email.utils.formatdate(usegmt=True)
        resource = signing.canonical_resource(self.bucket, key, query)
        to_sign = signing.header_string_to_sign(method, "", content_type, date, {}, resource)
        headers = {
            "Date": date,
            "Authorization": f"OSS {self.key_id}:{signing.hmac_sha1_b64(self.secret, to_sign)}",
        }
        if content_type:
            headers["Content-Type"] = content_type
        qs = "&".join(k if v is None else urlencode({k: v}, quote_via=quote) for k, v in query)
        url = f"{self.endpoint}/{self.bucket}/{quote(key)}" + (f"?{qs}" if qs else "")
        request = urllib.request.Request(url, body or None, headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT_S) as response:
                data = response.read(MAX_RESPONSE_BYTES)
        except urllib.error.HTTPError as e:
            raise ApiError(_error_text(e.code, e.read(MAX_RESPONSE_BYTES))) from None
        except (urllib.error.URLError, OSError) as e:
            reason = getattr(e, "reason", e)
            raise ApiError(f"cannot reach the service at {self.endpoint}: {reason}") from None
        return ET.fromstring(data) if data.strip() else None


def _error_text(status: int, body: bytes) -> str:
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        return f"HTTP {status}"
    code, message = root.findtext("Code") or "", root.findtext("Message") or ""
    return f"{code}: {message} (HTTP {status})" if code else f"HTTP {status}"
