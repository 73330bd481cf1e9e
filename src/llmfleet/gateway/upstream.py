"""The one upstream client: every call to a replica goes through here.

Each call has three clocks (``Timeouts`` from the spec): connect, time to
first byte (response headers, then the first SSE event) and idle between
events; ``timeouts.total_s`` bounds the whole request one level up, in
``failover``. A hung replica therefore costs a client at most ``first_byte_s``
or ``idle_s``, never forever. aiohttp and asyncio exceptions are translated
here, once, into ``AttemptError`` (a ``TemporaryUpstreamError`` that names what
failed, for passive ejection) or ``PermanentUpstreamError`` (the engine
rejected the request itself: 4xx, passed on to the client).

aiohttp is the client because it measured fastest of the libraries tried
(``bench/gateway_clients.py``: httpx was 2 to 9 times slower; a hand-written
httptools client bought too little to own an HTTP stack). Connections are
kept alive and reused: a stream that ended cleanly is read to its very end
(the chunked terminator after ``[DONE]``) before it is released, else aiohttp
would close the connection and the next request would pay a new TCP handshake.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Mapping
from functools import lru_cache

import aiohttp
from yarl import URL

from llmfleet.errors import PermanentUpstreamError, TemporaryUpstreamError
from llmfleet.gateway.health import Failure
from llmfleet.spec.model import Timeouts

JSON_HEADERS = {"Content-Type": "application/json"}
DRAIN_S = 1.0
"""How long a finished stream may take to send its last bytes before it is cut."""


class AttemptError(TemporaryUpstreamError):
    """One attempt failed in a way another replica (or later) may not."""

    def __init__(self, message: str, *, failure: Failure) -> None:
        super().__init__(message)
        self.failure = failure


@lru_cache(maxsize=4096)
def _parsed(url: str) -> URL:
    """Replica URLs are few and reused: parse each once, not per request."""
    return URL(url)


@lru_cache(maxsize=256)
def _client_timeout(timeouts: Timeouts) -> aiohttp.ClientTimeout:
    return aiohttp.ClientTimeout(
        total=None, connect=timeouts.connect_s, sock_connect=timeouts.connect_s
    )


class UpstreamStream:
    """An open SSE response; ``next_data`` yields each event's payload.

    The body is read in whatever blocks arrive and split into lines here: an
    engine that emits many events at once costs one read and one timer
    reschedule, not one per event, which matters on the hot path.
    """

    def __init__(self, response: aiohttp.ClientResponse, url: str) -> None:
        self.response = response
        self.url = url
        self._finished = False
        self._pending: deque[bytes] = deque()
        self._rest = b""

    @property
    def has_pending(self) -> bool:
        """Whether ``next_data`` can answer without waiting for the network."""
        return bool(self._pending)

    async def next_data(self, timeout_s: float) -> bytes | None:
        """The next ``data:`` payload, or None after ``[DONE]``.

        Raises ``AttemptError`` when nothing arrives within ``timeout_s`` or
        the stream ends without ``[DONE]`` (the replica died).
        """
        while not self._pending:
            await self._read_block(timeout_s)
        payload = self._pending.popleft()
        if payload == b"[DONE]":
            self._finished = True
            return None
        return payload

    async def _read_block(self, timeout_s: float) -> None:
        try:
            async with asyncio.timeout(timeout_s):
                block = await self.response.content.readany()
        except TimeoutError as exc:
            raise AttemptError(
                f"{self.url} sent nothing for {timeout_s:g} s", failure=Failure.TIMEOUT
            ) from exc
        except aiohttp.ClientError as exc:
            raise AttemptError(
                f"{self.url} broke the stream: {exc!r}", failure=Failure.CONNECT
            ) from exc
        if not block:
            raise AttemptError(
                f"{self.url} closed the stream before [DONE]", failure=Failure.CONNECT
            )
        if self._rest:
            block = self._rest + block
        lines = block.split(b"\n")
        self._rest = lines.pop()
        self._pending.extend(line[5:].strip() for line in lines if line[:5] == b"data:")

    async def close(self) -> None:
        """Give the connection back if the stream ended cleanly, else cut it
        (the engine sees the disconnect and frees the slot)."""
        content = self.response.content
        if self._finished and not content.at_eof():
            try:
                async with asyncio.timeout(DRAIN_S):
                    await content.read()
            except (TimeoutError, aiohttp.ClientError):
                self._finished = False
        if self._finished and content.at_eof():
            self.response.release()
        else:
            self.response.close()


class UpstreamClient:
    """Wraps the gateway's one shared ``aiohttp.ClientSession``."""

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self.session = session

    async def open_stream(
        self, url: str, body: bytes, timeouts: Timeouts, headers: Mapping[str, str] | None = None
    ) -> UpstreamStream:
        """POST ``body`` and return once the response headers say 200.

        ``headers`` are extra request headers (``traceparent`` when tracing is on)."""
        response = await self._post(url, body, timeouts, headers=headers)
        if response.status != 200:
            await self._raise_for_status(response, url, timeouts)
        return UpstreamStream(response, url)

    async def post_json(self, url: str, body: bytes, timeouts: Timeouts) -> bytes:
        """POST ``body`` and read the whole answer.

        An engine sends a non-streaming answer's headers only when it is done,
        so the headers and body together get ``first_byte_s``, the longest
        time a generation may take to show progress; ``total_s`` still bounds
        the request above this.
        """
        try:
            async with asyncio.timeout(timeouts.first_byte_s):
                response = await self._post(url, body, timeouts, timed=False)
                if response.status != 200:
                    await self._raise_for_status(response, url, timeouts)
                try:
                    return await response.read()
                finally:
                    response.release()
        except TimeoutError as exc:
            raise AttemptError(
                f"{url} did not answer within {timeouts.first_byte_s:g} s",
                failure=Failure.TIMEOUT,
            ) from exc
        except aiohttp.ClientError as exc:
            raise AttemptError(f"{url} broke off: {exc!r}", failure=Failure.CONNECT) from exc

    async def _post(
        self, url: str, body: bytes, timeouts: Timeouts, *, timed: bool = True,
        headers: Mapping[str, str] | None = None,
    ) -> aiohttp.ClientResponse:
        sent = JSON_HEADERS if headers is None else {**JSON_HEADERS, **headers}
        try:
            if not timed:
                return await self.session.post(
                    _parsed(url), data=body, headers=sent,
                    timeout=_client_timeout(timeouts),
                )
            async with asyncio.timeout(timeouts.first_byte_s):
                return await self.session.post(
                    _parsed(url), data=body, headers=sent,
                    timeout=_client_timeout(timeouts),
                )
        except TimeoutError as exc:
            raise AttemptError(
                f"{url} sent no response within {timeouts.first_byte_s:g} s",
                failure=Failure.TIMEOUT,
            ) from exc
        except aiohttp.ClientConnectorError as exc:
            raise AttemptError(f"cannot connect to {url}: {exc}", failure=Failure.CONNECT) from exc
        except aiohttp.ServerTimeoutError as exc:
            raise AttemptError(f"{url} timed out: {exc}", failure=Failure.TIMEOUT) from exc
        except aiohttp.ClientError as exc:
            raise AttemptError(f"{url} failed: {exc!r}", failure=Failure.CONNECT) from exc

    async def _raise_for_status(
        self, response: aiohttp.ClientResponse, url: str, timeouts: Timeouts
    ) -> None:
        try:
            async with asyncio.timeout(timeouts.idle_s):
                data = await response.read()
        except (TimeoutError, aiohttp.ClientError):
            data = b""
        finally:
            response.close()
        if response.status == 429:
            raise AttemptError(
                f"{url} is busy (429): {data[:200]!r}", failure=Failure.BUSY
            )
        if response.status >= 500:
            raise AttemptError(
                f"{url} answered {response.status}: {data[:200]!r}", failure=Failure.SERVER_ERROR
            )
        raise PermanentUpstreamError(
            f"{url} rejected the request ({response.status})", status=response.status, body=data
        )
