"""What the gateway's HTTP server writes before a body: status lines and headers; pure.

Kept apart from the connection's state machine (``protocol``) because it is the
one part with no state: bytes in, bytes out.
"""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus

from llmfleet.gateway.errors import ApiError

STATUS_LINES = {s.value: b"HTTP/1.1 %d %s\r\n" % (s.value, s.phrase.encode()) for s in HTTPStatus}
JSON_TYPE = b"Content-Type: application/json\r\n"
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


def render_head(
    status: int,
    content_type: str | None,
    headers: Mapping[str, str] | None,
    length: int | None,
    *,
    chunked: bool,
    date_line: bytes,
    keep_alive: bool,
    extra: Mapping[str, str] | None = None,
) -> bytes:
    """An answer's status line and headers, ending with the blank line; pure. Without a
    ``length`` the body is chunked (``chunked``) or ends with the connection. ``extra``
    are the headers of the request rather than of the answer (``x-request-id``)."""
    parts = [STATUS_LINES.get(status) or b"HTTP/1.1 %d Unknown\r\n" % status]
    if content_type == "application/json":
        parts.append(JSON_TYPE)
    elif content_type:
        parts.append(header_line("Content-Type", content_type))
    if headers:
        parts.extend(header_line(name, value) for name, value in headers.items())
    if extra:
        parts.extend(header_line(name, value) for name, value in extra.items())
    if length is not None:
        parts.append(b"Content-Length: %d\r\n" % length)
    elif chunked:
        parts.append(b"Transfer-Encoding: chunked\r\n")
    parts.append(date_line)
    if not keep_alive:
        parts.append(b"Connection: close\r\n")
    parts.append(b"\r\n")
    return b"".join(parts)


def headers_too_large(message: str) -> ApiError:
    return ApiError(431, message, type_="invalid_request_error", code="headers_too_large")


def header_line(name: str, value: str) -> bytes:
    if "\n" in value or "\r" in value or "\n" in name or "\r" in name:
        raise ValueError(f"the response header {name!r} has a line break")
    return f"{name}: {value}\r\n".encode("latin-1")
