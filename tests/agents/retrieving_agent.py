"""A small real retrieving agent for the validation tests: an ASGI app (no framework) that
embeds the question with the fleet's embedding service, searches its LanceDB index
(``LLMFLEET_INDEX_DOCS``, the one llmfleet gave it), asks the fleet's chat model, and
reports what it retrieved and the tool it ran in the ``llmfleet`` extension of its answer
(``llmfleet.validate.answers``), as every agent validated by llmfleet should.

``RETRIEVAL=reversed`` makes it a worse agent: it ranks the chunks farthest from the
question first, as a broken query or index setting would.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

import openai

from llmfleet.rag.index import Hit, VectorIndex

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
TOP_K = 3

_client: openai.AsyncOpenAI | None = None


def client() -> openai.AsyncOpenAI:
    global _client
    if _client is None:
        _client = openai.AsyncOpenAI(max_retries=0)  # OPENAI_BASE_URL, OPENAI_API_KEY
    return _client


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    if scope["path"] == "/healthz":
        await _reply(send, 200, {"status": "ok"})
        return
    if scope["path"] != "/v1/chat/completions" or scope["method"] != "POST":
        await _reply(send, 404, {"error": {"message": "not found"}})
        return
    body = json.loads(await _body(receive))
    question = str(body["messages"][-1]["content"])
    hits = await _search(question)
    answer = await client().chat.completions.create(
        model=os.environ["AGENT_MODEL"],
        messages=[{"role": "user", "content": f"{hits[0].text}\n\n{question}"}],
        max_tokens=8,
    )
    text = (answer.choices[0].message.content or "") + " Sources: " + hits[0].key
    call = {"query": question, "index": "docs", "top_k": TOP_K}
    report = {
        "sources": [
            {"filename": h.key, "score": round(1 - h.distance, 4), "text": h.text} for h in hits
        ],
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "search_docs", "arguments": json.dumps(call)},
            }
        ],
    }
    base = {
        "id": "chatcmpl-agent",
        "created": int(time.time()),
        "model": os.environ["LLMFLEET_AGENT"],
    }
    if body.get("stream"):
        await _stream(send, base, text, report)
        return
    message = {"role": "assistant", "content": text}
    choice = {"index": 0, "message": message, "finish_reason": "stop"}
    await _reply(
        send,
        200,
        {**base, "object": "chat.completion", "choices": [choice], "llmfleet": report},
    )


async def _stream(send: Send, base: dict[str, Any], text: str, report: dict[str, Any]) -> None:
    """The text in two chunks, then the last chunk (finish_reason) with the report."""
    head = [(b"content-type", b"text/event-stream")]
    await send({"type": "http.response.start", "status": 200, "headers": head})
    middle = len(text) // 2
    deltas: list[tuple[dict[str, Any], str | None]] = [
        ({"role": "assistant", "content": text[:middle]}, None),
        ({"content": text[middle:]}, None),
        ({}, "stop"),
    ]
    for delta, finish in deltas:
        chunk: dict[str, Any] = {
            **base,
            "object": "chat.completion.chunk",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
        if finish:
            chunk["llmfleet"] = report
        data = f"data: {json.dumps(chunk)}\n\n".encode()
        await send({"type": "http.response.body", "body": data, "more_body": True})
    await send({"type": "http.response.body", "body": b"data: [DONE]\n\n", "more_body": False})


async def _search(question: str) -> list[Hit]:
    embedded = await client().embeddings.create(model=os.environ["EMBED_MODEL"], input=question)
    index = VectorIndex.open(os.environ["LLMFLEET_INDEX_DOCS"], dimension=384)
    reversed_ = os.environ.get("RETRIEVAL") == "reversed"
    everything = index.search(embedded.data[0].embedding, k=1000 if reversed_ else TOP_K)
    return everything[::-1][:TOP_K] if reversed_ else everything


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
