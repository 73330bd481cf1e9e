"""Where an answer goes: an SSE stream to the client, or one JSON body.

The SSE sink prepares its response lazily, on the first payload: until then
nothing has reached the client, so a failed request can still be answered with
a proper status and OpenAI error JSON (and retried on another replica).
"""

from __future__ import annotations

from typing import Protocol

import orjson

from llmfleet.gateway.messages import Answer, Request, Response, StreamResponse
from llmfleet.gateway.stream import StreamState

SSE_HEADERS = {
    "Content-Type": "text/event-stream",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",
}
KEEP_ALIVE = b": keep-alive\n\n"
"""An SSE comment: clients ignore it, but it resets their read timeouts."""


class Sink(Protocol):
    forwards: bool
    """whether payloads go to the client one by one (else only the whole answer does)."""

    @property
    def started(self) -> bool:
        """Whether any byte reached the client."""

    def send(self, payload: bytes) -> None:
        """Queue one payload (no I/O: ``flush`` writes what is queued)."""

    async def flush(self) -> None: ...

    async def keep_alive(self) -> None:
        """Tell a started client the answer is still coming (an SSE comment)."""

    async def finish(self, state: StreamState) -> Answer: ...

    async def fail(self, error_body: bytes) -> Answer:
        """End a started answer with an error (only called once started)."""


class SseSink:
    """Streams payloads to the client as ``data:`` events."""

    forwards = True

    def __init__(self, request: Request) -> None:
        self.request = request
        self.response: StreamResponse | None = None
        self._buffer: list[bytes] = []

    @property
    def started(self) -> bool:
        return self.response is not None or bool(self._buffer)

    async def _prepared(self) -> StreamResponse:
        if self.response is None:
            self.response = StreamResponse(headers=SSE_HEADERS)
            await self.response.prepare(self.request)
        return self.response

    def send(self, payload: bytes) -> None:
        """Queue one event; ``flush`` writes the queue (one write per upstream burst)."""
        self._buffer.append(b"data: " + payload + b"\n\n")

    async def flush(self) -> None:
        if self._buffer:
            response = self.response or await self._prepared()
            data = b"".join(self._buffer)
            self._buffer.clear()
            await response.write(data)

    async def keep_alive(self) -> None:
        self._buffer.append(KEEP_ALIVE)
        await self.flush()

    async def finish(self, state: StreamState) -> Answer:
        if state.include_usage:
            self.send(state.usage_chunk())
        self._buffer.append(b"data: [DONE]\n\n")
        await self.flush()
        response = await self._prepared()
        await response.write_eof()
        return response

    async def fail(self, error_body: bytes) -> Answer:
        self.send(error_body)
        await self.flush()
        response = await self._prepared()
        await response.write_eof()
        return response


class JsonSink:
    """Collects the answer and returns it as one non-streaming body."""

    forwards = False
    started = False

    def send(self, payload: bytes) -> None:
        return None

    async def flush(self) -> None:
        return None

    async def keep_alive(self) -> None:
        return None

    async def finish(self, state: StreamState) -> Answer:
        return Response(orjson.dumps(state.completion()))

    async def fail(self, error_body: bytes) -> Answer:
        raise AssertionError("a JSON answer never starts before it is complete")
