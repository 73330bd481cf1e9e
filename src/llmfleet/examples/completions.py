"""Answering OpenAI chat completions from a plain ASGI app: what every example agent
shares (the docs assistant, and the agents of the tests).

``answer`` sends a ``chat.completion``, or, when the request asked to stream, one
``chat.completion.chunk`` per part, a last chunk with ``finish_reason`` and then
``data: [DONE]``. The agent's report of what it did (``validate.answers``: the
sources it retrieved and the tools it called) goes at the top level of the
completion, or of that last chunk, as ``usage`` does.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterable, Awaitable, Callable, Iterable
from typing import Any

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
Parts = Iterable[str] | AsyncIterable[str]
EXTENSION = "llmfleet"
"""The agent contract's extension object (``validate.answers.EXTENSION``; an agent
speaks the contract, it does not import llmfleet's validation)."""


async def read_body(receive: Receive) -> bytes:
    """The whole request body, however many messages it came in."""
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


async def reply(send: Send, status: int, payload: dict[str, Any]) -> None:
    """One JSON response."""
    head = [(b"content-type", b"application/json")]
    await send({"type": "http.response.start", "status": status, "headers": head})
    await send({"type": "http.response.body", "body": json.dumps(payload).encode()})


def error(message: str, kind: str = "invalid_request_error") -> dict[str, Any]:
    """An OpenAI-style error body."""
    return {"error": {"message": message, "type": kind}}


async def answer(
    send: Send,
    request: dict[str, Any],
    parts: Parts,
    *,
    model: str,
    report: dict[str, Any] | None = None,
) -> None:
    """Answer ``request`` with the text ``parts``, streamed if it asked; ``report`` is
    the agent contract's extension object, when the agent reports what it did."""
    base = {"id": f"chatcmpl-{uuid.uuid4().hex[:24]}", "created": int(time.time()), "model": model}
    extra = {EXTENSION: report} if report is not None else {}
    if not request.get("stream"):
        message = {"role": "assistant", "content": "".join([p async for p in _each(parts)])}
        choice = {"index": 0, "message": message, "finish_reason": "stop"}
        await reply(send, 200, {**base, "object": "chat.completion", "choices": [choice], **extra})
        return
    head = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]
    await send({"type": "http.response.start", "status": 200, "headers": head})
    delta: dict[str, str] = {"role": "assistant"}
    async for part in _each(parts):
        await _chunk(send, {**base, "choices": [_choice({**delta, "content": part}, None)]})
        delta = {}
    await _chunk(send, {**base, "choices": [_choice(delta, "stop")], **extra})
    await send({"type": "http.response.body", "body": b"data: [DONE]\n\n", "more_body": False})


async def _each(parts: Parts) -> AsyncIterable[str]:
    if isinstance(parts, AsyncIterable):
        async for part in parts:
            yield part
    else:
        for part in parts:
            yield part


def _choice(delta: dict[str, str], finish: str | None) -> dict[str, Any]:
    return {"index": 0, "delta": delta, "finish_reason": finish}


async def _chunk(send: Send, chunk: dict[str, Any]) -> None:
    data = json.dumps({**chunk, "object": "chat.completion.chunk"})
    body = f"data: {data}\n\n".encode()
    await send({"type": "http.response.body", "body": body, "more_body": True})
