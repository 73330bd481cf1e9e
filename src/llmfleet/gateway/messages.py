"""What the gateway's handlers get and give: ``Request``, ``Response`` and ``StreamResponse``.

These are the small surface of ``server`` that handlers see: a request read
whole (the gateway needs every body whole anyway, to route it), a response
with a complete body, or a stream the handler writes as it goes (SSE). They
hold no parsing and no socket code; ``server`` owns both.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import orjson
from multidict import CIMultiDict, CIMultiDictProxy

if TYPE_CHECKING:
    from llmfleet.gateway.protocol import HttpProtocol

JSON = "application/json"
SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:/+=-]{1,128}")
"""What a client's own ``x-request-id`` may be to be kept (and echoed, and logged): a
short token of visible characters; anything else is replaced by one of ours."""


def new_request_id() -> str:
    """32 hex digits, the shape of a W3C trace id (a traced request uses its trace id)."""
    return os.urandom(16).hex()


class Request:
    """One request, its body read whole."""

    __slots__ = (
        "_client_request_id",
        "_headers",
        "_raw_headers",
        "_request_id",
        "body",
        "http10",
        "keep_alive",
        "method",
        "oversize",
        "path",
        "protocol",
        "query",
        "reply_headers",
        "service",
        "traceparent",
    )

    def __init__(
        self,
        *,
        method: str,
        path: str,
        query: str,
        headers: Sequence[tuple[str, str]] | CIMultiDictProxy[str],
        body: bytes,
        keep_alive: bool = True,
        http10: bool = False,
        oversize: int | None = None,
        protocol: HttpProtocol | None = None,
        traceparent: str | None = None,
        request_id: str | None = None,
    ) -> None:
        self.method = method
        self.path = path
        self.query = query
        self._headers = headers if isinstance(headers, CIMultiDictProxy) else None
        self._raw_headers = () if isinstance(headers, CIMultiDictProxy) else headers
        self.body = body
        self.keep_alive = keep_alive
        """whether the connection may carry another request after this one's answer."""
        self.http10 = http10
        self.oversize = oversize
        """the body's size when it was over the server's limit and so not read (body is
        empty then); None when the body was read."""
        self.protocol = protocol
        """the connection it came on; None for a request made up in a test."""
        self.service = ""
        """the service the request named, once known (for error metrics)."""
        self.traceparent = traceparent
        """the W3C ``traceparent`` header, noted by the server as it parsed the headers
        (the one header every request is asked for when tracing is on)."""
        self._client_request_id = request_id
        self._request_id: str | None = None
        self.reply_headers: dict[str, str] | None = None
        """headers the answer carries whatever it is (200, an error, a stream): the
        rate-limit state of the caller's key."""

    @property
    def request_id(self) -> str:
        """The id the answer's ``x-request-id`` and the request's log line carry: the
        client's own when it sent a sane one, else the trace id or a new one."""
        found = self._request_id
        if found is None:
            found = self._client_request_id if self.has_client_request_id else None
            found = self._request_id = found or new_request_id()
        return found

    @request_id.setter
    def request_id(self, value: str) -> None:
        self._request_id = value

    @property
    def has_client_request_id(self) -> bool:
        """Whether the client sent a sane ``x-request-id`` (then a trace keeps it)."""
        found = self._client_request_id
        return found is not None and SANE_REQUEST_ID.fullmatch(found) is not None

    @property
    def headers(self) -> CIMultiDictProxy[str]:
        """Case-insensitive, as HTTP header names are; built on first use (most requests
        never look: no key required, no tracing)."""
        if self._headers is None:
            self._headers = CIMultiDictProxy(CIMultiDict(self._raw_headers))
        return self._headers

    def header(self, name: str) -> str | None:
        """The first value of one header (``name`` in lower case), without building
        ``headers``: what the hot path uses for the one or two it reads."""
        if self._headers is not None:
            return self._headers.get(name)
        for key, value in self._raw_headers:
            if key.lower() == name:
                return value
        return None


class Response:
    """A complete answer."""

    __slots__ = ("body", "content_type", "headers", "status")

    def __init__(
        self,
        body: bytes = b"",
        *,
        status: int = 200,
        content_type: str | None = JSON,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.body = body
        self.status = status
        self.content_type = content_type
        self.headers = headers


def json_response(data: Any, *, status: int = 200) -> Response:
    return Response(orjson.dumps(data), status=status)


class StreamWriter(Protocol):
    """What a ``StreamResponse`` writes through (the connection it answers on)."""

    def start_stream(self, response: StreamResponse) -> None: ...

    async def write_stream(self, data: bytes) -> None: ...

    def end_stream(self) -> None: ...


class StreamResponse:
    """An answer written in parts as they are ready (server-sent events)."""

    __slots__ = ("_writer", "ended", "headers", "status")

    def __init__(self, *, status: int = 200, headers: Mapping[str, str] | None = None) -> None:
        self.status = status
        self.headers = headers or {}
        self.ended = False
        self._writer: StreamWriter | None = None

    @property
    def prepared(self) -> bool:
        return self._writer is not None

    async def prepare(self, request: Request) -> None:
        """Send the status and headers."""
        if self._writer is None:
            if request.protocol is None:
                raise RuntimeError("this request has no connection to answer on")
            self._writer = request.protocol
            self._writer.start_stream(self)

    async def write(self, data: bytes) -> None:
        """Send ``data`` (waits while the client reads slower than the answer comes);
        raises ``ConnectionResetError`` once the client is gone."""
        if self._writer is None:
            raise RuntimeError("prepare() the response first")
        if data:
            await self._writer.write_stream(data)

    async def write_eof(self) -> None:
        """End the answer; the connection may carry the client's next request."""
        if self._writer is not None and not self.ended:
            self.ended = True
            self._writer.end_stream()


Answer = Response | StreamResponse
"""What a handler returns."""
