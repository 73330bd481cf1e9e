"""One client connection of the gateway's HTTP/1.1 server: httptools parses, a task answers.

Written for the gateway's path instead of taken from aiohttp, whose request,
response and writer objects, header multidicts and routing cost more on that path
than all of this server (``bench/gateway_overhead.py`` measures the gateway). The
gateway needs little of what aiohttp offers, and what it needs is here:

* keep-alive (an idle connection closes after ``keepalive_s``), pipelined
  requests answered in order, chunked request bodies, ``Expect: 100-continue``;
* what one client may take is bounded (``intake.Limits``): a request's head and
  body must arrive in time (else 408), connections per address (429), and the
  bytes of all bodies held at once (503, before the body is read);
* a request's head is shown to ``check_head`` before its body is read: an error
  it returns (401, 413) is answered at once and the body is drained unread; a
  verdict that waits (a key being looked up) stops the reading until it is ready;
* bodies read whole up to their limit; a larger one is handed to the handler
  without its body (``Request.oversize``) as soon as its size is known, so the
  handler answers 413 before it is read; the rest of a body not read is drained
  (not kept) so the client sees the answer, then the connection closes;
* a client that half-closes after its request gets its answer. A client that
  closes sends the same FIN, and its handler must be cancelled (upstream work
  stops): a ``100 Continue`` sent ahead of the answer, which a client that
  closed answers with a reset, tells the two apart;
* HEAD answered like GET without the body (routing is the handler's);
* a ``StreamResponse`` goes out with chunked transfer encoding (to an HTTP/1.0
  client unframed, ending with the connection), waiting while the client reads
  slower than the answer comes;
* a client that disconnects cancels its handler, so upstream work stops too;
* bytes that are not HTTP get 400 and the connection closes; a handler that
  fails gets 500 as OpenAI JSON (logged).

A request that arrives whole in one read (nearly all of them) arms no timer:
the read deadlines start only when a read leaves a request incomplete.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections import deque
from collections.abc import Mapping
from typing import TYPE_CHECKING, cast
from urllib.parse import unquote

import httptools

from llmfleet.gateway import errors
from llmfleet.gateway.errors import ApiError
from llmfleet.gateway.framing import CONTINUE, headers_too_large, render_head
from llmfleet.gateway.intake import (
    Deferred,
    Head,
    ReadClock,
    Verdict,
    bodies_full,
    request_timeout,
)
from llmfleet.gateway.messages import Request, Response, StreamResponse, new_request_id

if TYPE_CHECKING:
    from llmfleet.gateway.server import Server

log = logging.getLogger("llmfleet.gateway.server")

MAX_HEADER_BYTES = 64 * 1024
MAX_HEADERS = 128
MAX_PIPELINED = 16
"""requests read ahead of the one being answered before the socket stops being read."""
LINGER_S = 10.0
"""how long the rest of a refused body is drained before the connection closes."""
ERROR_LINGER_S = 2.0
"""how long a connection ended by an error answer drops what the client still sends."""
PEER_CHECK_S = 0.25
"""after a client's FIN, how often the socket is asked whether the client reset it."""


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
        self.address: str | None = None
        """the client's address, when it is counted against ``connections_per_address``."""
        # the request being read
        self._reading = False
        """whether a request's bytes are arriving (begun and not complete)."""
        self._url = b""
        self._path = ""
        self._query = ""
        self._headers: list[tuple[str, str]] = []
        self._header_bytes = 0
        self._length: int | None = None
        self._framed_body = False
        """Transfer-Encoding: the body's size is known at its end."""
        self._expects_continue = False
        self._continued = False
        self._traceparent: str | None = None
        self._request_id: str | None = None
        """the client's ``x-request-id``, kept when sane (``Request.request_id``)."""
        self._head_done = False
        self._body: list[bytes] = []
        self._size = 0
        self._limit = server.max_body_bytes
        self._reserved = 0
        """the bytes of ``server.bodies`` taken for the request being read."""
        self._counting = False
        """whether the body's bytes are taken from ``server.bodies`` as they come."""
        self._deferred: Deferred | None = None
        self._checking: asyncio.Task[None] | None = None
        self._clock: ReadClock | None = None
        self._read_timer: asyncio.TimerHandle | None = None
        self._draining = False
        self._drained = False
        self._last = False
        """no request after the ones read so far: close once they are answered."""
        self._stopped = False
        """read nothing more (an error was answered, or will be after the answer in progress)."""
        self._held = 0
        """the bytes of ``server.bodies`` this connection holds, for all its requests."""
        # answers
        self._pending: deque[Request] = deque()
        self._refusals: dict[Request, Response] = {}
        """answers decided before the body was read, given without the handler."""
        self._task: asyncio.Task[None] | None = None
        self._current: Request | None = None
        self._chunked = True
        self._streaming = False
        """whether the answer in progress is a stream whose head went out."""
        self._reading_paused = False
        self._writing_paused = False
        self._drain: asyncio.Future[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._peer_timer: asyncio.TimerHandle | None = None

    # -- asyncio protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # asyncio and uvloop both set TCP_NODELAY: stream parts go out as they are written
        self.transport = cast(asyncio.Transport, transport)
        refusal = self.server.admit(self)
        if refusal is not None:
            self._write_error(refusal)
            self.transport.close()
            return
        self._timer = self.loop.call_later(self.server.keepalive_s, self._close_idle)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.server.forget(self)
        self._pending.clear()
        self._refusals.clear()
        for timer in (self._timer, self._read_timer, self._peer_timer):
            if timer is not None:
                timer.cancel()
        for task in (self._task, self._checking):
            if task is not None and not task.done():
                task.cancel()  # the client left: stop the work done for it
        if self._held:
            self.server.bodies.give(self._held)
            self._held = 0
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)

    def data_received(self, data: bytes) -> None:
        if self._stopped:
            return  # an error was answered: what the client still sends is dropped
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
        else:
            if self._reading and not self._draining:
                self._note_partial_read()

    def eof_received(self) -> bool:
        """The client sends nothing more: a half-close after its requests, which are
        owed their answers, or the first half of a full close (then a 100 Continue
        draws a reset from the client's host, and ``_check_peer`` sees it)."""
        self._last = True
        if self._task is None or self.transport is None:
            return False  # nothing to answer (a request cut short gets none): close
        self._drained = True
        current = self._current
        if not self._streaming and current is not None and not current.http10:
            self.transport.write(CONTINUE)  # a client must read past any 1xx answer
        self._peer_timer = self.loop.call_later(PEER_CHECK_S, self._check_peer)
        return True

    def pause_writing(self) -> None:
        self._writing_paused = True

    def resume_writing(self) -> None:
        self._writing_paused = False
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)

    # -- httptools callbacks

    def on_message_begin(self) -> None:
        self._reading, self._head_done = True, False
        self._url, self._headers, self._header_bytes = b"", [], 0
        self._length, self._framed_body, self._traceparent = None, False, None
        self._request_id = None
        self._expects_continue = self._continued = False
        self._body, self._size, self._limit = [], 0, self.server.max_body_bytes
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def on_url(self, url: bytes) -> None:
        self._url += url
        self._count_header_bytes(len(url))

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count_header_bytes(len(name) + len(value))
        if len(self._headers) >= MAX_HEADERS:
            self._refuse(headers_too_large("the request has too many headers"))
            raise _RefusedError
        if len(name) == 14 and name.lower() == b"content-length" and value.isdigit():
            self._length = int(value)
        elif len(name) == 17 and name.lower() == b"transfer-encoding":
            self._framed_body = True
        elif len(name) == 6 and name.lower() == b"expect":
            self._expects_continue = value.lower() == b"100-continue"
        elif len(name) == 11 and name.lower() == b"traceparent":
            # two are invalid (W3C trace context): "" starts a trace of our own
            self._traceparent = value.decode("latin-1") if self._traceparent is None else ""
        elif len(name) == 12 and name.lower() == b"x-request-id" and self._request_id is None:
            self._request_id = value.decode("latin-1")
        self._headers.append((name.decode("latin-1"), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        self._head_done = True
        self._path, self._query = self._target()
        if not self._length and not self._framed_body:  # no body to judge
            if self._expects_continue:
                self._send_continue()
            return
        check = self.server.check_head
        self._judge(check(self._head()) if check is not None else None)

    def on_body(self, body: bytes) -> None:
        if self._draining:
            return
        self._size += len(body)
        if self._size > self._limit:
            self._hand_over_oversize(self._size)
            return
        if self._counting and not self._take(len(body)):
            return
        self._body.append(body)

    def on_message_complete(self) -> None:
        self._reading = False
        if self._read_timer is not None:
            self._read_timer.cancel()
            self._read_timer = None
        self._clock = None
        if self._draining:
            self._drained = True
            if self._task is None:
                self.close()  # answered and drained: the client can read the answer
            return
        self._deferred = None  # the body came with its head: the handler judges the request
        self._reserved = 0  # the request holds it now, until it is answered
        body = self._body[0] if len(self._body) == 1 else b"".join(self._body)
        self._enqueue(self._request(body))

    # -- the body: judged by its head, taken from the budget, or not read

    def _judge(self, verdict: Verdict) -> None:
        """Act on what ``check_head`` said of the request being read."""
        if isinstance(verdict, ApiError):
            self._refuse_body(verdict)
            return
        if isinstance(verdict, Deferred):
            self._deferred, self._counting = verdict, True  # one read's bytes at most
            verdict = verdict.limit
        if verdict is not None:
            self._limit = min(self.server.max_body_bytes, verdict)
        size = self._length if self._length is not None else self._size
        if size > self._limit:
            self._hand_over_oversize(size)
        elif self._deferred is not None:
            return  # the rest of the verdict (and the 100 Continue) waits
        elif self._length is None:
            self._counting = True
        else:
            self._counting = False
            if not self._take(self._length - self._reserved):
                return
        if self._expects_continue and not self._draining:
            self._send_continue()

    def _take(self, size: int) -> bool:
        """Take ``size`` bytes of the body budget for the request being read, or refuse
        it (503) when they do not fit."""
        if size <= 0:
            return True
        if not self.server.bodies.take(size):
            self._refuse_body(bodies_full(self.server.bodies))
            return False
        self._reserved += size
        self._held += size
        return True

    def _release(self, size: int) -> None:
        size = min(size, self._held)
        self._held -= size
        self.server.bodies.give(size)

    def _start_check(self, deferred: Deferred) -> None:
        self._checking = self.loop.create_task(self._finish_check(deferred))
        self._sync_reading()

    async def _finish_check(self, deferred: Deferred) -> None:
        """Wait for the deferred verdict (reading stopped meanwhile), then ask again."""
        try:
            await deferred.ready()
        except Exception:
            log.exception("checking a request's head failed; its handler will check it")
        self._checking = None
        if self.closed or self._deferred is not deferred or not self._reading:
            self._sync_reading()
            return
        self._deferred = None
        check = self.server.check_head
        verdict = check(self._head()) if check is not None else None
        self._judge(verdict.limit if isinstance(verdict, Deferred) else verdict)
        if self._clock is not None:
            self._clock.saw(self.loop.time(), head_done=True)  # the wait was ours
        self._sync_reading()

    def _hand_over_oversize(self, size: int) -> None:
        """Let the handler answer a body too large to read; drain the rest, then close."""
        self._stop_body()
        self._enqueue(self._request(b"", oversize=size))

    def _refuse_body(self, error: ApiError) -> None:
        """Answer ``error`` in its turn without reading the body; drain it, then close."""
        self._stop_body()
        request = self._request(b"")
        request.keep_alive = False
        self._refusals[request] = error.response()
        self._enqueue(request)

    def _stop_body(self) -> None:
        self._draining, self._last = True, True
        # a client that waits for 100 Continue sends no body unasked
        self._drained = not self._reading or (self._expects_continue and not self._continued)
        self._release(self._reserved)
        self._reserved, self._counting, self._deferred, self._body = 0, False, None, []
        if self._read_timer is not None:
            self._read_timer.cancel()
            self._read_timer = None
        self._timer = self.loop.call_later(LINGER_S, self.close)

    def _send_continue(self) -> None:
        if self.transport is not None and not self._continued:
            self._continued = True
            self.transport.write(CONTINUE)

    # -- read deadlines (slowloris)

    def _note_partial_read(self) -> None:
        """A read left a request incomplete: start (or feed) its read deadlines, and the
        check its head waits on."""
        now = self.loop.time()
        if self._clock is None:
            self._clock = ReadClock(self.server.limits, started_at=now)
        self._clock.saw(now, head_done=self._head_done)
        if self._read_timer is None:
            self._read_timer = self.loop.call_at(self._clock.due(), self._read_expired)
        if self._deferred is not None and self._checking is None:
            self._start_check(self._deferred)

    def _read_expired(self) -> None:
        self._read_timer = None
        clock = self._clock
        if clock is None or self.closed or self._draining:
            return
        now = self.loop.time()
        if self._reading_paused:  # the stall is ours (pipelining, a check): look again later
            limits = self.server.limits
            delay = min(limits.header_timeout_s, limits.body_idle_s)
            self._read_timer = self.loop.call_later(delay, self._read_expired)
            return
        late = clock.late(now)
        if late is None:
            self._read_timer = self.loop.call_at(clock.due(), self._read_expired)
        else:
            self._refuse(request_timeout(late))

    def _check_peer(self) -> None:
        """After a FIN during an answer: cancel it if the client reset the connection."""
        self._peer_timer = None
        if self.closed or self._task is None or self.transport is None:
            return
        sock = self.transport.get_extra_info("socket")
        try:
            gone = sock is not None and sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) != 0
        except OSError:
            gone = True
        if gone:
            self.abort()
        else:
            self._peer_timer = self.loop.call_later(PEER_CHECK_S, self._check_peer)

    # -- requests and answers

    def _target(self) -> tuple[str, str]:
        """The request's path (percent-decoded) and query."""
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
        return path, raw_query.decode("latin-1")

    def _head(self) -> Head:
        return Head(
            method=self.parser.get_method().decode("ascii"),
            path=self._path,
            headers=self._headers,
            length=self._length,
        )

    def _request(self, body: bytes, oversize: int | None = None) -> Request:
        return Request(
            method=self.parser.get_method().decode("ascii"),
            path=self._path,
            query=self._query,
            headers=self._headers,
            body=body,
            keep_alive=oversize is None and self.parser.should_keep_alive(),
            http10=self.parser.get_http_version() == "1.0",
            oversize=oversize,
            protocol=self,
            traceparent=self._traceparent,
            request_id=self._request_id,
        )

    def _enqueue(self, request: Request) -> None:
        self._pending.append(request)
        if self._task is None:
            self._answer_next()
        elif len(self._pending) >= MAX_PIPELINED and not self._reading_paused:
            self._sync_reading()

    def _answer_next(self) -> None:
        request = self._pending.popleft()
        if self._reading_paused:
            self._sync_reading()
        self._current = request
        self._task = self.loop.create_task(self._answer(request))

    async def _answer(self, request: Request) -> None:
        try:
            refusal = self._refusals.pop(request, None) if self._refusals else None
            response = refusal if refusal is not None else await self.server.handler(request)
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
        if request.body:
            self._release(len(request.body))
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
        head = self._head_bytes(
            response.status,
            response.content_type,
            response.headers,
            len(body),
            request.keep_alive,
            request=request,
        )
        transport = cast(asyncio.Transport, self.transport)
        if request.method == "HEAD":
            transport.write(head)
        elif len(body) < 65536:
            transport.write(head + body)
        else:
            transport.write(head)
            transport.write(body)

    def _head_bytes(
        self,
        status: int,
        content_type: str | None,
        headers: Mapping[str, str] | None,
        length: int | None,
        keep_alive: bool,
        *,
        request: Request | None,
    ) -> bytes:
        """The head of an answer to ``request`` (None: an error that ends the connection
        before a request was whole), with its ``x-request-id`` and reply headers."""
        extra = {"x-request-id": request.request_id if request else new_request_id()}
        if request is not None and request.reply_headers:
            extra.update(request.reply_headers)
        return render_head(
            status,
            content_type,
            headers,
            length,
            extra=extra,
            chunked=self._chunked,
            date_line=self.server.date_line(),
            keep_alive=keep_alive,
        )

    # -- StreamResponse's writer

    def start_stream(self, response: StreamResponse) -> None:
        request = self._current
        if request is None or self.transport is None:
            raise RuntimeError("no request is being answered on this connection")
        self._chunked = not request.http10
        self._streaming = True
        keep_alive = request.keep_alive and self._chunked
        self.transport.write(
            self._head_bytes(
                response.status, None, response.headers, None, keep_alive, request=request
            )
        )

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

    # -- reading, refusing and ending

    def _sync_reading(self) -> None:
        """Read from the socket unless something stops it: a refusal, a head check
        under way, or too many requests read ahead of their answers."""
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        pause = self._stopped or self._checking is not None or len(self._pending) >= MAX_PIPELINED
        if pause != self._reading_paused:
            self._reading_paused = pause
            if pause:
                transport.pause_reading()
            else:
                transport.resume_reading()

    def _count_header_bytes(self, count: int) -> None:
        self._header_bytes += count
        if self._header_bytes > MAX_HEADER_BYTES:
            self._refuse(headers_too_large("the request's line and headers are too large"))
            raise _RefusedError

    def _refuse(self, error: ApiError) -> None:
        """Answer ``error`` and close, unless a request is being answered: then close
        after it, without reading more (answers must keep the requests' order)."""
        self._last = self._stopped = True
        if self._task is None and self.transport is not None and not self.closed:
            self._write_error(error)
            self._linger()
        else:
            self._sync_reading()

    def _linger(self) -> None:
        """Close once the client has read the last answer: closing while it still sends
        would reset the connection, and a reset can discard the answer unread. So the
        answer is followed by a FIN, what still comes is dropped, and the connection
        closes at the client's FIN or after ``ERROR_LINGER_S``."""
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if transport.can_write_eof():
            transport.write_eof()
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self.loop.call_later(ERROR_LINGER_S, self.close)

    def _write_error(self, error: ApiError) -> None:
        """Write ``error`` as the connection's last answer."""
        if self.transport is not None:
            response = error.response()
            head = self._head_bytes(
                response.status,
                response.content_type,
                response.headers,
                len(response.body),
                False,
                request=None,
            )
            self.transport.write(head + response.body)

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
