"""The one upstream client: every call to a replica goes through here.

Each call has three clocks (``Timeouts`` from the spec): connect, time to
first byte (response headers, then the first SSE event) and idle between
events; ``timeouts.total_s`` bounds the whole request one level up, in
``failover``. A hung replica therefore costs a client at most ``first_byte_s``
or ``idle_s``, never forever. Transport failures are translated here, once,
into ``AttemptError`` (a ``TemporaryUpstreamError`` that names what failed,
for passive ejection) or ``PermanentUpstreamError`` (the engine rejected the
request itself: 4xx, passed on to the client). A 401 is the exception: the
engine refused the key the local agent made for it, which is the gateway's
problem, not the client's.

The HTTP/1.1 underneath is ``connections`` and ``pool``: keep-alive connections
per replica with httptools parsing the answers, chosen by measurement because this is the
hot path of every request. ``bench/gateway_clients.py --rounds 5 --cpu 1`` (the
gateway's request against the sim, client and sim pinned to one core each; p50
at concurrency 1, plain / streamed): this client 0.47 / 0.51 ms, aiohttp's
0.70 / 0.72 ms, httpx 1.69 / 1.78 ms, and a bare httptools protocol with no
timeouts or error handling, the floor, 0.45 / 0.51 ms. aiohttp spends the
difference on request and response objects, header multidicts, its timers and
payload machinery; ``connections`` keeps only what the gateway uses. A stream
that ended cleanly is given back to the pool, which keeps its connection once
the chunked terminator after ``[DONE]`` is in (nobody waits for it); any other
is cut, which also tells the engine to stop generating.
"""

from __future__ import annotations

import asyncio

from llmfleet.errors import PermanentUpstreamError, TemporaryUpstreamError
from llmfleet.gateway.connections import (
    BODY,
    END,
    BrokenConnectionError,
    ConnectError,
    Connection,
    ConnectTimeoutError,
)
from llmfleet.gateway.errors import NOT_SUPPORTED, engine_words
from llmfleet.gateway.health import Failure
from llmfleet.gateway.pool import ConnectionPool, target_of
from llmfleet.spec.model import Timeouts

DRAIN_S = 1.0
"""How long a finished stream may take to send its last bytes before it is cut."""


class AttemptError(TemporaryUpstreamError):
    """One attempt failed in a way another replica (or later) may not."""

    def __init__(self, message: str, *, failure: Failure) -> None:
        super().__init__(message)
        self.failure = failure


class UpstreamStream:
    """An open SSE response; ``next_burst`` yields the events' payloads.

    The body is read in whatever blocks arrive and split into lines here: an
    engine that emits many events at once costs one read and one wake-up, not
    one per event, which matters on the hot path. ``close`` must follow, always.
    """

    def __init__(self, conn: Connection, pool: ConnectionPool, url: str) -> None:
        self.conn = conn
        self.pool = pool
        self.url = url
        self._finished = False
        self._rest = b""

    @property
    def finished(self) -> bool:
        """Whether ``[DONE]`` arrived."""
        return self._finished

    async def next_burst(self, timeout_s: float) -> list[bytes]:
        """The ``data:`` payloads of the next bytes to arrive, up to ``[DONE]``
        (after which ``finished`` is true and the list may be empty).

        Raises ``AttemptError`` when nothing arrives within ``timeout_s`` or
        the stream ends without ``[DONE]`` (the replica died).
        """
        while True:
            payloads = self._payloads(await self._read_block(timeout_s))
            if payloads:
                break
        if b"[DONE]" in payloads:
            self._finished = True
            return payloads[: payloads.index(b"[DONE]")]
        return payloads

    def _payloads(self, block: bytes) -> list[bytes]:
        if self._rest:
            block = self._rest + block
        lines = block.split(b"\n")
        self._rest = lines.pop()
        return [line[5:].strip() for line in lines if line[:5] == b"data:"]

    async def _read_block(self, timeout_s: float) -> bytes:
        try:
            block = await self.conn.read(timeout_s)
        except TimeoutError as exc:
            raise AttemptError(
                f"{self.url} sent nothing for {timeout_s:g} s", failure=Failure.TIMEOUT
            ) from exc
        except BrokenConnectionError as exc:
            raise AttemptError(
                f"{self.url} broke the stream: {exc}", failure=Failure.CONNECT
            ) from exc
        if not block:
            raise AttemptError(
                f"{self.url} closed the stream before [DONE]", failure=Failure.CONNECT
            )
        return block

    async def close(self) -> None:
        """Give the connection back if the stream ended cleanly, else cut it
        (the engine sees the disconnect and frees the slot).

        A clean end waits for nobody: the bytes after ``[DONE]`` (the chunked
        terminator, often in a later packet) are awaited by the pool, which
        keeps the connection once they are in or cuts it after ``DRAIN_S``.
        """
        if self._finished:
            self.pool.release_when_complete(self.conn, within_s=DRAIN_S)
        else:
            self.conn.close()


class UpstreamClient:
    """Calls replicas over the gateway's one ``ConnectionPool``."""

    def __init__(self, pool: ConnectionPool | None = None) -> None:
        self.pool = pool if pool is not None else ConnectionPool()

    async def open_stream(
        self, url: str, body: bytes, timeouts: Timeouts, head: bytes = b""
    ) -> UpstreamStream:
        """POST ``body`` and return once the response headers say 200.

        ``head`` holds extra request header lines (``traceparent`` when tracing is on)."""
        deadline = asyncio.get_running_loop().time() + timeouts.first_byte_s
        conn = await self._send(url, body, timeouts, deadline=deadline, head=head, until=BODY)
        if conn.status != 200:
            await self._raise_for_status(conn, url, timeouts)
        return UpstreamStream(conn, self.pool, url)

    async def post_json(
        self, url: str, body: bytes, timeouts: Timeouts, head: bytes = b""
    ) -> bytes:
        """POST ``body`` and read the whole answer (``head``: as for ``open_stream``).

        An engine sends a non-streaming answer's headers only when it is done,
        so the headers and body together get ``first_byte_s``, the longest
        time a generation may take to show progress; ``total_s`` still bounds
        the request above this.
        """
        deadline = asyncio.get_running_loop().time() + timeouts.first_byte_s
        conn = await self._send(url, body, timeouts, deadline=deadline, head=head, until=END)
        if conn.status != 200:
            await self._raise_for_status(conn, url, timeouts)
        try:
            data = await conn.read_to_end(deadline)
        except TimeoutError as exc:
            conn.close()
            raise self._no_answer(url, timeouts, whole=True) from exc
        except BrokenConnectionError as exc:
            conn.close()
            raise AttemptError(f"{url} broke off: {exc}", failure=Failure.CONNECT) from exc
        except BaseException:
            conn.close()
            raise
        self.pool.release(conn)
        return data

    def close(self) -> None:
        self.pool.close()

    async def _send(
        self,
        url: str,
        body: bytes,
        timeouts: Timeouts,
        *,
        deadline: float,
        head: bytes,
        until: int,
    ) -> Connection:
        try:
            return await self.pool.send(
                target_of(url),
                body,
                deadline=deadline,
                connect_s=timeouts.connect_s,
                head=head,
                until=until,
            )
        except ConnectTimeoutError as exc:
            raise AttemptError(f"{url} timed out: {exc}", failure=Failure.TIMEOUT) from exc
        except TimeoutError as exc:
            raise self._no_answer(url, timeouts, whole=until == END) from exc
        except (ConnectError, ValueError) as exc:
            raise AttemptError(f"cannot connect to {url}: {exc}", failure=Failure.CONNECT) from exc
        except BrokenConnectionError as exc:
            raise AttemptError(f"{url} failed: {exc}", failure=Failure.CONNECT) from exc

    @staticmethod
    def _no_answer(url: str, timeouts: Timeouts, *, whole: bool) -> AttemptError:
        what = "did not answer" if whole else "sent no response"
        return AttemptError(
            f"{url} {what} within {timeouts.first_byte_s:g} s", failure=Failure.TIMEOUT
        )

    async def _raise_for_status(self, conn: Connection, url: str, timeouts: Timeouts) -> None:
        status = conn.status
        try:
            data = await conn.read_to_end(asyncio.get_running_loop().time() + timeouts.idle_s)
        except (TimeoutError, BrokenConnectionError):
            data = b""
        except BaseException:
            conn.close()
            raise
        self.pool.release(conn)  # closed instead unless the answer was read to its end
        if status == 429:
            raise AttemptError(f"{url} is busy (429): {engine_words(data)}", failure=Failure.BUSY)
        if status == 401:
            # The engine refused the key the agent made for it, not the client's: the
            # client's request may well succeed on another replica, and an engine's
            # "Invalid API Key" passed on would tell the client its own key is wrong.
            raise AttemptError(f"{url} refused the gateway's engine key (401)", failure=Failure.KEY)
        if status >= 500 and status != NOT_SUPPORTED:  # 501: the request, not the replica
            raise AttemptError(
                f"{url} answered {status}: {engine_words(data)}", failure=Failure.SERVER_ERROR
            )
        raise PermanentUpstreamError(
            f"{url} rejected the request ({status})", status=status, body=data
        )
