"""A small real agent for the tests: an ASGI app (no framework) that answers chat
completions by calling the fleet's gateway with the ``openai`` client, as any agent
would, with the base URL and key llmfleet gave it in its environment.

``use:NAME question`` asks the service NAME instead of the agent's own model
(``AGENT_MODEL``), so a test can see the gateway refuse a service outside the
key's scope; ``env:NAME`` answers with the value of the variable NAME; ``trace`` with the
``traceparent`` it was sent.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

import openai

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

_client: openai.AsyncOpenAI | None = None


def client() -> openai.AsyncOpenAI:
    global _client
    if _client is None:
        _client = openai.AsyncOpenAI(max_retries=0)  # OPENAI_BASE_URL, OPENAI_API_KEY
    return _client


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    if scope["path"] == "/healthz":  # the spec's health_path: not the engines' /health
        await _reply(send, 200, {"status": "ok"})
        return
    if scope["path"] != "/v1/chat/completions" or scope["method"] != "POST":
        await _reply(send, 404, {"error": {"message": "not found"}})
        return
    body = json.loads(await _body(receive))
    headers = {k.decode(): v.decode() for k, v in scope["headers"]}
    question = str(body["messages"][-1]["content"])
    trace = {"traceparent": headers["traceparent"]} if "traceparent" in headers else {}
    if question == "trace":
        await _answer(send, body, [headers.get("traceparent", "<none>")])
        return
    if question.startswith("env:"):
        await _answer(send, body, [os.environ.get(question[4:], "<unset>")])
        return
    model = os.environ["AGENT_MODEL"]
    if question.startswith("use:"):
        model, question = question[4:].split(" ", 1)
    try:
        parts = await _ask(model, question, trace)
    except openai.APIStatusError as exc:
        parts = [f"refused {exc.status_code}"]
    await _answer(send, body, parts)


async def _ask(model: str, question: str, trace: dict[str, str]) -> list[str]:
    stream = await client().chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": question}],
        max_tokens=8,
        stream=True,
        extra_headers=trace,
    )
    parts = ["[docs-assistant] "]
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            parts.append(chunk.choices[0].delta.content)
    return parts


async def _answer(send: Send, body: dict[str, Any], parts: list[str]) -> None:
    name = os.environ["LLMFLEET_AGENT"]
    base = {"id": "chatcmpl-agent", "created": int(time.time()), "model": name}
    if not body.get("stream"):
        message = {"role": "assistant", "content": "".join(parts)}
        choice = {"index": 0, "message": message, "finish_reason": "stop"}
        await _reply(send, 200, {**base, "object": "chat.completion", "choices": [choice]})
        return
    head = [(b"content-type", b"text/event-stream")]
    await send({"type": "http.response.start", "status": 200, "headers": head})
    for part in [*parts, None]:
        delta = {"content": part} if part is not None else {}
        choice = {"index": 0, "delta": delta, "finish_reason": None if part else "stop"}
        chunk = {**base, "object": "chat.completion.chunk", "choices": [choice]}
        data = f"data: {json.dumps(chunk)}\n\n".encode()
        await send({"type": "http.response.body", "body": data, "more_body": True})
    await send({"type": "http.response.body", "body": b"data: [DONE]\n\n", "more_body": False})


async def _body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


async def _reply(send: Send, status: int, payload: dict[str, Any]) -> None:
    data = json.dumps(payload).encode()
    head = [(b"content-type", b"application/json")]
    await send({"type": "http.response.start", "status": status, "headers": head})
    await send({"type": "http.response.body", "body": data})
