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

import openai

from llmfleet.examples.completions import Receive, Scope, Send, answer, read_body, reply
from llmfleet.rag.index import Hit, VectorIndex

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
        await reply(send, 200, {"status": "ok"})
        return
    if scope["path"] != "/v1/chat/completions" or scope["method"] != "POST":
        await reply(send, 404, {"error": {"message": "not found"}})
        return
    body = json.loads(await read_body(receive))
    question = str(body["messages"][-1]["content"])
    hits = await _search(question)
    completion = await client().chat.completions.create(
        model=os.environ["AGENT_MODEL"],
        messages=[{"role": "user", "content": f"{hits[0].text}\n\n{question}"}],
        max_tokens=8,
    )
    text = (completion.choices[0].message.content or "") + " Sources: " + hits[0].key
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
    middle = len(text) // 2  # streamed in two parts, the report on the last chunk
    parts = [text[:middle], text[middle:]]
    await answer(send, body, parts, model=os.environ["LLMFLEET_AGENT"], report=report)


async def _search(question: str) -> list[Hit]:
    embedded = await client().embeddings.create(model=os.environ["EMBED_MODEL"], input=question)
    index = VectorIndex.open(os.environ["LLMFLEET_INDEX_DOCS"], dimension=384)
    reversed_ = os.environ.get("RETRIEVAL") == "reversed"
    everything = index.search(embedded.data[0].embedding, k=1000 if reversed_ else TOP_K)
    return everything[::-1][:TOP_K] if reversed_ else everything
