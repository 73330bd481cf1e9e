"""The gateway's HTTP/1.1 server: httptools parses requests, one task answers each.

aiohttp's server was measured against this one on the gateway's own path: the
workload of ``bench/gateway_overhead.py`` (sim behind, 2 shared cores,
interleaved rounds, added p50 at concurrency 1 over the sim alone) through a
handler that only forwards the body with ``upstream``: aiohttp 0.28 to 0.62 ms,
this server 0.18 ms in the same runs; the whole gateway on aiohttp's server
added 0.85 ms (resume) and 0.52 ms (plain), on this one 0.55 and 0.37 in the
same run. aiohttp spends it on request, response and writer objects, header
multidicts, routing objects and, on Python 3.11, two more trips through the
event loop before a handler runs. The gateway needs little of what aiohttp
offers, and what it needs is here:

* keep-alive (an idle connection closes after ``keepalive_s``), pipelined
  requests answered in order, chunked request bodies, ``Expect: 100-continue``;
* bodies read whole up to ``max_body_bytes``; a larger one is handed to the
  handler without its body (``Request.oversize``) as soon as its size is known,
  so the handler answers 413 before it is read, and the rest is drained (not
  read into memory) so the client sees that answer, then the connection closes;
* HEAD answered like GET without the body (routing is the handler's);
* a ``StreamResponse`` goes out with chunked transfer encoding (to an HTTP/1.0
  client unframed, ending with the connection), waiting while the client reads
  slower than the answer comes;
* a client that disconnects cancels its handler, so upstream work stops too;
* bytes that are not HTTP get 400 and the connection closes; a handler that
  fails gets 500 as OpenAI JSON (logged).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from email.utils import formatdate
from http import HTTPStatus
from typing import cast
from urllib.parse import unquote

import httptools

from llmfleet.gateway import errors
from llmfleet.gateway.messages import Request, Response, StreamResponse

log = logging.getLogger(__name__)

Handler = Callable[[Request], Awaitable[Response | StreamResponse]]

MAX_HEADER_BYTES = 64 * 1024
MAX_HEADERS = 128
MAX_PIPELINED = 16
"""requests read ahead of the one being answered before the socket stops being read."""
LINGER_S = 10.0
"""how long the rest of a refused body is drained before the connection closes."""

_STATUS_LINES = {s.value: b"HTTP/1.1 %d %s\r\n" % (s.value, s.phrase.encode()) for s in HTTPStatus}
_JSON_TYPE = b"Content-Type: application/json\r\n"
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


class _RefusedError(Exception):
    """Stops the parser after an answer that ends the connection was sent."""


class HttpProtocol(asyncio.Protocol):
    """One client connection. Parser callbacks collect a request; each complete
    request is answered by a task, in the order they came."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.loop = asyncio.get_running_loop()
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self._url = b""
        self._headers: list[tuple[str, str]] = []
        self._header_bytes = 0
        self._length: int | None = None
        self._expects_continue = False
        self._traceparent: str | None = None
        self._body: list[bytes] = []
        self._size = 0
        self._draining = False
        self._drained = False
        self._last = False
        """no request after the ones read so far: close once they are answered."""
        self._pending: deque[Request] = deque()
        self._task: asyncio.Task[None] | None = None
        self._current: Request | None = None
        self._chunked = True
        self._streaming = False
        """whether the answer in progress is a stream whose head went out."""
        self._reading_paused = False
        self._writing_paused = False
        self._drain: asyncio.Future[None] | None = None
        self._timer: asyncio.TimerHandle | None = None

    # -- asyncio protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # asyncio and uvloop both set TCP_NODELAY: stream parts go out as they are written
        self.transport = cast(asyncio.Transport, transport)
        self.server.connections.add(self)
        self._timer = self.loop.call_later(self.server.keepalive_s, self._close_idle)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.server.forget(self)
        self._pending.clear()
        if self._timer is not None:
            self._timer.cancel()
        if self._task is not None and not self._task.done():
            self._task.cancel()  # the client left: stop the work done for it
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._last = True  # no protocol switch: answer what came, then close
            if self._task is None:
                self.close()
        except httptools.HttpParserCallbackError as exc:
            if not isinstance(exc.__context__, _RefusedError):
                log.exception("the gateway's HTTP parser callbacks failed")
                self.close()
        except httptools.HttpParserError as exc:
            self._refuse(errors.bad_request(f"the request is not valid HTTP: {exc}"))

    def pause_writing(self) -> None:
        self._writing_paused = True

    def resume_writing(self) -> None:
        self._writing_paused = False
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)

    # -- httptools callbacks

    def on_message_begin(self) -> None:
        self._url, self._headers, self._header_bytes = b"", [], 0
        self._length, self._expects_continue, self._traceparent = None, False, None
        self._body, self._size = [], 0
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def on_url(self, url: bytes) -> None:
        self._url += url
        self._count_header_bytes(len(url))

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count_header_bytes(len(name) + len(value))
        if len(self._headers) >= MAX_HEADERS:
            self._refuse(_headers_too_large("the request has too many headers"))
            raise _RefusedError
        if len(name) == 14 and name.lower() == b"content-length" and value.isdigit():
            self._length = int(value)
        elif len(name) == 6 and name.lower() == b"expect":
            self._expects_continue = value.lower() == b"100-continue"
        elif len(name) == 11 and name.lower() == b"traceparent":
            # two are invalid (W3C trace context): "" starts a trace of our own
            self._traceparent = value.decode("latin-1") if self._traceparent is None else ""
        self._headers.append((name.decode("latin-1"), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        if self._length is not None and self._length > self.server.max_body_bytes:
            self._hand_over_oversize(self._length)
        elif self._expects_continue and self.transport is not None:
            self.transport.write(_CONTINUE)

    def on_body(self, body: bytes) -> None:
        if self._draining:
            return
        self._size += len(body)
        if self._size > self.server.max_body_bytes:
            self._hand_over_oversize(self._size)
            return
        self._body.append(body)

    def on_message_complete(self) -> None:
        if self._draining:
            self._drained = True
            if self._task is None:
                self.close()  # answered and drained: the client can read the answer
            return
        body = self._body[0] if len(self._body) == 1 else b"".join(self._body)
        self._enqueue(self._request(body))

    # -- requests and answers

    def _request(self, body: bytes, oversize: int | None = None) -> Request:
        url = self._url
        if url[:1] == b"/":
            raw_path, _, raw_query = url.partition(b"?")
        else:  # absolute form
            try:
                parsed = httptools.parse_url(url)
            except httptools.HttpParserInvalidURLError:
                self._refuse(errors.bad_request(f"the request target {url[:200]!r} is not a URL"))
                raise _RefusedError from None
            raw_path, raw_query = parsed.path or b"/", parsed.query or b""
        path = raw_path.decode("latin-1")
        if "%" in path:
            path = unquote(path)
        return Request(
            method=self.parser.get_method().decode("ascii"),
            path=path,
            query=raw_query.decode("latin-1"),
            headers=self._headers,
            body=body,
            keep_alive=oversize is None and self.parser.should_keep_alive(),
            http10=self.parser.get_http_version() == "1.0",
            oversize=oversize,
            protocol=self,
            traceparent=self._traceparent,
        )

    def _hand_over_oversize(self, size: int) -> None:
        """Let the handler answer a body too large to read; drain the rest, then close."""
        self._draining, self._last = True, True
        self._drained = self._expects_continue  # such a client sends no body unasked
        self._body = []
        self._enqueue(self._request(b"", oversize=size))
        self._timer = self.loop.call_later(LINGER_S, self.close)

    def _enqueue(self, request: Request) -> None:
        self._pending.append(request)
        if self._task is None:
            self._answer_next()
        elif len(self._pending) >= MAX_PIPELINED and not self._reading_paused and self.transport:
            self._reading_paused = True
            self.transport.pause_reading()

    def _answer_next(self) -> None:
        request = self._pending.popleft()
        if self._reading_paused and self.transport is not None:
            self._reading_paused = False
            self.transport.resume_reading()
        self._current = request
        self._task = self.loop.create_task(self._answer(request))

    async def _answer(self, request: Request) -> None:
        try:
            response = await self.server.handler(request)
        except Exception:
            log.exception("the gateway failed on %s %s", request.method, request.path)
            if self._streaming:
                self.close()  # the client sees the stream cut short
                return
            response = errors.internal_error().response()
        if self.closed:
            return
        try:
            self._send(request, response)
        except Exception:
            log.exception("cannot answer %s %s", request.method, request.path)
            self.close()
            return
        self._task, self._current, self._streaming = None, None, False
        if self.closed:
            return
        if not request.keep_alive or (self._last and not self._pending):
            if not self._draining or self._drained:
                self.close()  # else once the body is drained (or LINGER_S passed)
        elif self._pending:
            self._answer_next()
        else:
            self._timer = self.loop.call_later(self.server.keepalive_s, self._close_idle)

    def _send(self, request: Request, response: Response | StreamResponse) -> None:
        if isinstance(response, StreamResponse):
            if not response.prepared:
                self.start_stream(response)
            if not response.ended:
                response.ended = True
                self.end_stream()
            if not self._chunked:
                request.keep_alive = False
            return
        body = response.body
        head = self._head(
            response.status, response.content_type, response.headers, len(body), request.keep_alive
        )
        transport = cast(asyncio.Transport, self.transport)
        if request.method == "HEAD":
            transport.write(head)
        elif len(body) < 65536:
            transport.write(head + body)
        else:
            transport.write(head)
            transport.write(body)

    def _head(
        self,
        status: int,
        content_type: str | None,
        headers: Mapping[str, str] | None,
        length: int | None,
        keep_alive: bool,
    ) -> bytes:
        parts = [_STATUS_LINES.get(status) or b"HTTP/1.1 %d Unknown\r\n" % status]
        if content_type == "application/json":
            parts.append(_JSON_TYPE)
        elif content_type:
            parts.append(_header_line("Content-Type", content_type))
        if headers:
            parts.extend(_header_line(name, value) for name, value in headers.items())
        if length is not None:
            parts.append(b"Content-Length: %d\r\n" % length)
        elif self._chunked:
            parts.append(b"Transfer-Encoding: chunked\r\n")
        parts.append(self.server.date_line())
        if not keep_alive:
            parts.append(b"Connection: close\r\n")
        parts.append(b"\r\n")
        return b"".join(parts)

    # -- StreamResponse's writer

    def start_stream(self, response: StreamResponse) -> None:
        request = self._current
        if request is None or self.transport is None:
            raise RuntimeError("no request is being answered on this connection")
        self._chunked = not request.http10
        self._streaming = True
        keep_alive = request.keep_alive and self._chunked
        self.transport.write(self._head(response.status, None, response.headers, None, keep_alive))

    async def write_stream(self, data: bytes) -> None:
        transport = self.transport
        if self.closed or transport is None or transport.is_closing():
            raise ConnectionResetError("the client closed the connection")
        transport.write(b"%x\r\n%b\r\n" % (len(data), data) if self._chunked else data)
        if self._writing_paused:
            self._drain = self.loop.create_future()
            await self._drain
            if self.closed:
                raise ConnectionResetError("the client closed the connection")

    def end_stream(self) -> None:
        if self._chunked and self.transport is not None and not self.closed:
            self.transport.write(b"0\r\n\r\n")

    # -- ending

    def _count_header_bytes(self, count: int) -> None:
        self._header_bytes += count
        if self._header_bytes > MAX_HEADER_BYTES:
            self._refuse(_headers_too_large("the request's line and headers are too large"))
            raise _RefusedError

    def _refuse(self, error: errors.ApiError) -> None:
        """Answer ``error`` and close, unless a request is being answered: then close
        after it, without reading more (answers must keep the requests' order)."""
        self._last = True
        if self._task is None and self.transport is not None and not self.closed:
            response = error.response()
            head = self._head(
                response.status, response.content_type, response.headers, len(response.body), False
            )
            self.transport.write(head + response.body)
            self.close()
        elif self.transport is not None and not self._reading_paused:
            self._reading_paused = True
            self.transport.pause_reading()

    def _close_idle(self) -> None:
        if self._task is None:
            self.close()

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    def abort(self) -> None:
        """Stop the answer in progress and close."""
        if self._task is not None:
            self._task.cancel()
        self.close()

    def shut_down(self) -> None:
        """Close now if idle, else after the answer in progress."""
        self._last = True
        if self._task is None:
            self.close()


def _headers_too_large(message: str) -> errors.ApiError:
    return errors.ApiError(431, message, type_="invalid_request_error", code="headers_too_large")


def _header_line(name: str, value: str) -> bytes:
    if "\n" in value or "\r" in value or "\n" in name or "\r" in name:
        raise ValueError(f"the response header {name!r} has a line break")
    return f"{name}: {value}\r\n".encode("latin-1")


class Server:
    """Listens and answers every request with ``handler``."""

    def __init__(self, handler: Handler, *, max_body_bytes: int, keepalive_s: float = 75.0) -> None:
        self.handler = handler
        self.max_body_bytes = max_body_bytes
        self.keepalive_s = keepalive_s
        self.connections: set[HttpProtocol] = set()
        self._server: asyncio.Server | None = None
        self._all_gone: asyncio.Event | None = None
        self._date = (0, b"")

    @property
    def port(self) -> int:
        if self._server is None or not self._server.sockets:
            raise RuntimeError("the server is not listening")
        return int(self._server.sockets[0].getsockname()[1])

    async def start(
        self, *, sock: socket.socket | None = None, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        """Listen on ``sock`` (bound already) or on ``host``:``port`` (0: any free port)."""
        loop = asyncio.get_running_loop()
        if sock is not None:
            self._server = await loop.create_server(lambda: HttpProtocol(self), sock=sock)
        else:
            self._server = await loop.create_server(
                lambda: HttpProtocol(self), host, port, backlog=1024
            )

    async def close(self, *, grace_s: float = 10.0) -> None:
        """Stop listening, let answers in progress finish for up to ``grace_s``, then
        cut what is left."""
        if self._server is not None:
            self._server.close()
        self._all_gone = asyncio.Event()
        for conn in list(self.connections):
            conn.shut_down()
        if self.connections:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._all_gone.wait(), grace_s)
        for conn in list(self.connections):
            conn.abort()
        if self._server is not None:
            await self._server.wait_closed()

    def forget(self, conn: HttpProtocol) -> None:
        """``conn`` closed."""
        self.connections.discard(conn)
        if self._all_gone is not None and not self.connections:
            self._all_gone.set()

    def date_line(self) -> bytes:
        """The Date header, formatted once a second."""
        now = int(time.time())
        if now != self._date[0]:
            self._date = (now, f"Date: {formatdate(now, usegmt=True)}\r\n".encode())
        return self._date[1]
