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
from typing import Any

import openai

from llmfleet.examples.completions import Receive, Scope, Send, answer, read_body, reply

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
        await reply(send, 200, {"status": "ok"})
        return
    if scope["path"] != "/v1/chat/completions" or scope["method"] != "POST":
        await reply(send, 404, {"error": {"message": "not found"}})
        return
    body = json.loads(await read_body(receive))
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
    await answer(send, body, parts, model=os.environ["LLMFLEET_AGENT"])
