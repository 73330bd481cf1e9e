"""HTTP/1.1 to the engines, one connection: httptools parses the answers.

This is transport only; ``upstream`` gives it meaning (SSE, statuses, which
failure another replica can fix), and ``pool`` keeps connections alive per
replica. A ``Connection`` carries one exchange at a time: ``send_request``,
then ``wait_answer`` for the status (and the first body bytes, or all of it),
then ``read`` or ``read_to_end``. It may carry another exchange only when the
answer was read to its last byte and the server allows keep-alive
(``reusable``); anything else (an error, a timeout, a cancelled task, an
answer left half read) must ``close`` it, so the engine sees the disconnect
and frees the slot, and no later request can read a stale answer.

Four kinds of failure reach the caller: ``ConnectError`` and
``ConnectTimeoutError`` (no connection, so nothing was sent),
``BrokenConnectionError`` (closed, reset or unparsable in the middle of an
exchange) and ``TimeoutError`` (a deadline passed).

Deadlines are times on the event loop's clock. A wait arms one timer on the
loop and only when there is nothing to read yet: the common case, bytes already
in, costs no timer at all.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import cast

import httptools

HIGH_WATER = 256 * 1024
"""Unread answer bytes at which the socket stops being read (until they are read)."""
_SMALL_BODY = 64 * 1024
"""Bodies up to this size are sent in the same write as the head."""


HEADERS, BODY, END = 0, 1, 2
"""How much of an answer ``pool.ConnectionPool.send`` waits for: the headers, the first body
bytes as well (the caller reads them next: one wake-up instead of two), or all of it."""


class ConnectError(ConnectionError):
    """No connection could be opened: nothing was sent."""


class ConnectTimeoutError(TimeoutError):
    """No connection within ``connect_s``: nothing was sent."""


class BrokenConnectionError(ConnectionError):
    """The connection closed, reset or sent bytes that are not HTTP mid-exchange."""


class Connection(asyncio.Protocol):
    """One TCP connection to an engine carrying one exchange at a time (no pipelining).

    The protocol callbacks (``data_received`` and httptools' ``on_*``) only
    record what arrived and wake the one reader; the ``async`` methods wait.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.origin: tuple[str, int] = ("", 0)
        self.idle_since = 0.0
        self.status = 0
        self.busy = False
        self.headers_done = False
        self.complete = False
        self.lost = False
        self.received = False
        """whether any byte of the current answer arrived."""
        self._reusable = True
        self._keep_alive = False
        self._framed = False
        self._informational = False
        self._chunks: list[bytes] = []
        self._buffered = 0
        self._reading_paused = False
        self._large = False
        self._wake_on_headers = True
        self._error: BrokenConnectionError | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._on_end: Callable[[Connection], None] | None = None
        self._cut_timer: asyncio.TimerHandle | None = None

    # -- asyncio protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not registered as ``asyncio.Transport`` subclasses
        self.transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if self.busy and not self.complete:
            if self.headers_done and not self._framed:
                self.complete = True  # an answer without length or chunks ends at EOF
                self._keep_alive = False
            elif self._error is None:
                where = "in the middle of the answer" if self.received else "before an answer"
                detail = f": {exc}" if exc is not None else ""
                self._error = BrokenConnectionError(f"the connection closed {where}{detail}")
        self._wake()
        self._end()

    def data_received(self, data: bytes) -> None:
        if not self.busy or self.complete:
            self._reusable = False  # bytes nobody asked for: this connection is out of step
            self.close()
            return
        self.received = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._error = BrokenConnectionError(f"the answer is not valid HTTP: {exc}")
            self.close()
            self._wake()

    # -- httptools callbacks

    def on_message_begin(self) -> None:
        if self.complete:
            self._reusable = False  # a second answer to one request

    def on_header(self, name: bytes, _value: bytes) -> None:
        # Content-Length (14) or Transfer-Encoding (17): the body's end is in the bytes
        if len(name) in (14, 17) and name.lower() in (b"content-length", b"transfer-encoding"):
            self._framed = True

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        if status < 200:
            self._informational = True  # 1xx: the real answer follows
            self._framed = False
            return
        self.status = status
        self.headers_done = True
        if self._wake_on_headers:
            self._wake()

    def on_body(self, body: bytes) -> None:
        self._chunks.append(body)
        self._buffered += len(body)
        if self._buffered > HIGH_WATER and not self._reading_paused and self.transport:
            self._reading_paused = True
            self.transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        if self._informational:
            self._informational = False
            return
        if self.complete:
            return
        self.complete = True
        self._keep_alive = self._parser.should_keep_alive()
        self._wake()
        self._end()

    # -- the exchange

    @property
    def reusable(self) -> bool:
        """Whether the answer was read to its end and the connection may carry another."""
        transport = self.transport
        return (
            self.complete
            and self._keep_alive
            and self._reusable
            and not self.lost
            and transport is not None
            and not transport.is_closing()
            # an engine that answered before reading a large body may still be sent its rest
            and not (self._large and transport.get_write_buffer_size() > 0)
        )

    def send_request(self, head: bytes, body: bytes) -> None:
        """Write one request (``head`` ends with the last header line, no blank line)."""
        transport = cast(asyncio.Transport, self.transport)  # set by ConnectionPool._connect
        self.busy, self.headers_done, self.complete, self.received = True, False, False, False
        self.status, self._framed, self._error = 0, False, None
        self._chunks.clear()
        self._buffered = 0
        head += b"Content-Length: %d\r\n\r\n" % len(body)
        self._large = len(body) > _SMALL_BODY
        if not self._large:
            transport.write(head + body)
        else:  # the transport buffers what the socket does not take at once
            transport.write(head)
            transport.write(body)

    async def wait_answer(self, deadline: float, *, until: int = HEADERS) -> int:
        """The answer's status once its headers are in, and (``until``) its first body
        bytes or all of it; when only those are late at ``deadline``, the status still."""
        self._wake_on_headers = until == HEADERS
        try:
            while not self._has(until):
                if self._error is not None:
                    raise self._error
                try:
                    await self._wait(deadline)
                except TimeoutError:
                    if self.headers_done and until != END:
                        break  # the first bytes are late: the caller's read times that
                    raise
        finally:
            self._wake_on_headers = True
        return self.status

    def _has(self, until: int) -> bool:
        if until == HEADERS:
            return self.headers_done
        if until == BODY:
            return self.headers_done and (bool(self._chunks) or self.complete)
        return self.complete

    async def read(self, timeout_s: float) -> bytes:
        """The body bytes that arrived since the last read, waiting up to ``timeout_s``
        for some; ``b""`` once the answer is complete and read."""
        while not self._chunks:
            if self.complete:
                return b""
            if self._error is not None:
                raise self._error
            await self._wait(self._loop.time() + timeout_s)
        return self._take()

    async def read_to_end(self, deadline: float) -> bytes:
        """The rest of the body, by ``deadline``."""
        while not self.complete:
            if self._error is not None:
                raise self._error
            await self._wait(deadline)
        return self._take()

    def end_exchange(self) -> None:
        """The caller is done with the answer: drop what it left unread."""
        self.busy = False
        self._chunks.clear()
        self._buffered = 0

    def close(self) -> None:
        """Cut the connection: the engine sees it go and stops the work."""
        self._reusable = False
        if self.transport is not None:
            self.transport.close()
        self._end()

    def when_ended(self, callback: Callable[[Connection], None], *, within_s: float) -> None:
        """Call ``callback`` once, when the answer's last byte is in or the connection is
        gone; cut the connection if the answer takes longer than ``within_s`` to end."""
        self._on_end = callback
        if self.complete or self.lost:
            self._end()
            return
        self._take()  # what is left unread is not wanted: never let it pause reading
        self._cut_timer = self._loop.call_later(within_s, self.close)

    def _end(self) -> None:
        if self._on_end is not None:
            callback, self._on_end = self._on_end, None
            if self._cut_timer is not None:
                self._cut_timer.cancel()
                self._cut_timer = None
            callback(self)

    def _take(self) -> bytes:
        data = self._chunks[0] if len(self._chunks) == 1 else b"".join(self._chunks)
        self._chunks.clear()
        self._buffered = 0
        if self._reading_paused and self.transport is not None:
            self._reading_paused = False
            self.transport.resume_reading()
        return data

    async def _wait(self, deadline: float) -> None:
        waiter = self._waiter = self._loop.create_future()
        timer = self._loop.call_at(deadline, _expire, waiter)
        try:
            await waiter
        finally:
            self._waiter = None
            timer.cancel()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


def _expire(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_exception(TimeoutError())
