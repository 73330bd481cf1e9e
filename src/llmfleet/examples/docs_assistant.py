"""docs-assistant: the agent of ``examples/rag.yaml``, an ASGI app that answers from documents.

For each question it embeds the question with the fleet's embedding service, takes
the nearest chunks from its index (LanceDB, or PostgreSQL with pgvector), asks the
chat service with those excerpts, and answers with citations. It reaches the fleet
only as an agent may: through the gateway at ``OPENAI_BASE_URL`` with the key
llmfleet made for it (``OPENAI_API_KEY``, scoped to the agent's ``models:``), and
the index at the location apply gave it (``LLMFLEET_INDEX_<NAME>``), read, never
written.

Configured by its spec's ``env:`` (defaults in brackets): ``DOCS_CHAT_MODEL``
[chat], ``DOCS_EMBEDDING`` [embed], ``DOCS_INDEX`` [docs], ``DOCS_TOP_K`` [4],
``DOCS_MAX_TOKENS`` [256].

The answer is an OpenAI chat completion (streamed when asked) whose text ends
with its citations, each source document once with its line nearest to the
question (``docs_grounding``), so any client sees them::

    Sources:
    [1] cli/rollback.txt: "Put production back to an earlier revision ..."

The response (with streaming, its last chunk) also reports what it did as the agent
contract of ``llmfleet validate`` has it (``validate.answers``): every retrieved
chunk, nearest first, and the tools it called (none: retrieval is its own code)::

    "llmfleet": {"sources": [{"filename": "cli/rollback.txt", "score": 0.39,
                              "text": "the chunk", "attributes": {"index": "docs",
                              "distance": 0.61, "quote": "Put production back ..."}}],
                 "tool_calls": []}

Every call it makes carries the request's trace context, so the gateway's spans of
its calls join the trace of the request; with OpenTelemetry configured in its
environment (``OTEL_EXPORTER_OTLP_ENDPOINT``, which ``llmfleet apply`` sets to the
spec's ``observability.otlp_endpoint``) it records its own ``retrieve``, ``search``
and ``chat`` spans between them (``docs_tracing``).
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from opentelemetry.trace import SpanKind

from llmfleet.errors import IngestError
from llmfleet.examples.completions import (
    Parts,
    Receive,
    Scope,
    Send,
    answer,
    error,
    read_body,
    reply,
)
from llmfleet.examples.docs_grounding import (
    Source,
    build_messages,
    candidate_lines,
    citations,
    nearest,
)
from llmfleet.examples.docs_tracing import RequestTrace, Tracer, TraceSettings
from llmfleet.rag.index import Hit, Index
from llmfleet.rag.stores import open_location, read_identity
from llmfleet.spec.agents import index_variable
from llmfleet.spec.rag import PGVECTOR_SCHEME, S3_SCHEME


class NotIngestedError(Exception):
    """The index has never been filled: nothing to answer from."""


class ModelRefusedError(Exception):
    """The chat service answered with an error before any text."""


@dataclass(frozen=True)
class Config:
    """What the agent needs, read once from its environment."""

    base_url: str
    api_key: str | None
    chat_model: str
    embedding_model: str
    index_name: str
    index_uri: str
    top_k: int
    max_tokens: int

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Config:
        """``ConfigError`` naming the variable that is missing or not a number."""
        index_name = env.get("DOCS_INDEX", "docs")
        for needed in ("OPENAI_BASE_URL", index_variable(index_name)):
            if not env.get(needed):
                raise ConfigError(
                    f"{needed} is not set: run the agent with llmfleet apply "
                    f"(its spec lists index {index_name!r} under indexes:)"
                )
        return cls(
            base_url=env["OPENAI_BASE_URL"].rstrip("/"),
            api_key=env.get("OPENAI_API_KEY"),
            chat_model=env.get("DOCS_CHAT_MODEL", "chat"),
            embedding_model=env.get("DOCS_EMBEDDING", "embed"),
            index_name=index_name,
            index_uri=env[index_variable(index_name)],
            top_k=_count(env, "DOCS_TOP_K", 4),
            max_tokens=_count(env, "DOCS_MAX_TOKENS", 256),
        )


class ConfigError(Exception):
    """The agent's environment cannot run it; said at startup, before it is ready."""


def _count(env: Mapping[str, str], name: str, default: int) -> int:
    text = env.get(name, str(default))
    if not text.isdigit() or int(text) < 1:
        raise ConfigError(f"{name} must be a whole number >= 1, got {text!r}")
    return int(text)


class DocsAssistant:
    """The ASGI app; its HTTP client and index are made on first use, closed at shutdown."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        self._env = env
        self._config: Config | None = None
        self._http: httpx.AsyncClient | None = None
        self._index: Index | None = None
        self._tracer: Tracer | None = None

    @property
    def environ(self) -> Mapping[str, str]:
        """Its settings, and the variable a pgvector index's URL is read from."""
        return os.environ if self._env is None else self._env

    @property
    def config(self) -> Config:
        if self._config is None:
            self._config = Config.from_env(self.environ)
        return self._config

    @property
    def tracer(self) -> Tracer:
        if self._tracer is None:
            env = os.environ if self._env is None else self._env
            self._tracer = Tracer(TraceSettings.from_env(env))
        return self._tracer

    def http(self) -> httpx.AsyncClient:
        if self._http is None:
            key = self.config.api_key
            headers = {"Authorization": f"Bearer {key}"} if key else {}
            timeout = httpx.Timeout(300, connect=5)
            self._http = httpx.AsyncClient(headers=headers, timeout=timeout)
        return self._http

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] != "http":
            return
        elif scope["path"] == "/health":
            await reply(send, 200, {"status": "ok"})
        elif scope["path"] == "/v1/chat/completions" and scope["method"] == "POST":
            await self._chat(scope, receive, send)
        else:
            await reply(send, 404, error("not found: POST /v1/chat/completions"))

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    self.config  # noqa: B018 - read now: a bad setting stops it before ready
                    self.tracer  # noqa: B018 - and the exporter made before the first request
                except ConfigError as exc:
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self._http is not None:
                    await self._http.aclose()
                self.close_index()
                if self._tracer is not None:
                    await asyncio.to_thread(self._tracer.shutdown)  # the last spans exported
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _chat(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            body = json.loads(await read_body(receive))
            messages = list(body["messages"])
            question = str(next(m for m in reversed(messages) if m["role"] == "user")["content"])
        except (ValueError, KeyError, TypeError, StopIteration):
            await reply(send, 400, error("a chat completion needs messages with a user turn"))
            return
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        trace = self.tracer.request(headers)
        try:
            sources = await self.retrieve(question, trace)
        except NotIngestedError:
            text = (
                f"The index '{self.config.index_name}' has no documents yet: run "
                f"`llmfleet ingest` for the pipeline that fills it."
            )
            await self._answer(send, body, [text], [])
            return
        except httpx.HTTPError as exc:
            await reply(send, 502, error(f"the embedding service failed: {exc}", "api_error"))
            return
        except IngestError as exc:  # the index's store cannot be read (password scrubbed)
            await reply(send, 503, error(exc.message, "api_error"))
            return
        request = {
            "model": self.config.chat_model,
            "messages": build_messages(messages, sources),
            "max_tokens": min(int(body.get("max_tokens") or 1 << 30), self.config.max_tokens),
            "temperature": body.get("temperature", 0.0),
            "stream": True,
            "frequency_penalty": body.get("frequency_penalty", 0.5),  # small models loop
        }
        parts = self._ask_model(request, trace, citation=citations(sources))
        try:
            first = await anext(parts)  # the model's refusal, before anything is sent
        except ModelRefusedError as exc:
            refused = f"the chat service '{request['model']}' {exc}"
            await reply(send, 502, error(refused, "api_error"))
            return
        await self._answer(send, body, _chain(first, parts), sources)

    async def _answer(
        self, send: Send, body: dict[str, Any], parts: Parts, sources: list[Source]
    ) -> None:
        report = {"sources": [s.to_json(index=self.config.index_name) for s in sources],
                  "tool_calls": []}  # fmt: skip
        model = os.environ.get("LLMFLEET_AGENT", "docs-assistant")
        await answer(send, body, parts, model=model, report=report)

    async def retrieve(self, question: str, trace: RequestTrace) -> list[Source]:
        """The ``top_k`` chunks nearest to ``question``, nearest first, each with its
        line nearest to the question as its quote; a ``retrieve`` span in ``trace``."""
        index, top_k = self.config.index_name, self.config.top_k
        attributes: dict[str, str | int | float] = {
            "llmfleet.index": index,
            "llmfleet.top_k": top_k,
        }
        with trace.span("retrieve", attributes=attributes) as step:
            (vector,) = await self._embed([question], step.headers)
            pgvector = self.config.index_uri.startswith(PGVECTOR_SCHEME)
            system = "postgresql" if pgvector else "lancedb"
            search = {"db.system": system, "db.collection.name": index}
            with trace.span(f"search {index}", attributes=search, within=step) as searched:
                hits = await asyncio.to_thread(self._search, vector)
                searched.set("llmfleet.hits", len(hits))
            lines = [candidate_lines(h.text) for h in hits]
            flat = [line for group in lines for line in group]
            vectors = iter(await self._embed(flat, step.headers) if flat else [])
        sources = []
        for hit, group in zip(hits, lines, strict=True):
            mine = [next(vectors) for _ in group]
            quote = nearest(vector, group, mine)
            sources.append(Source(hit.key, round(hit.distance, 4), hit.text, quote))
        return sources

    async def _embed(self, texts: list[str], trace: Mapping[str, str]) -> list[list[float]]:
        reply = await self.http().post(
            f"{self.config.base_url}/embeddings",
            json={"model": self.config.embedding_model, "input": texts},
            headers=dict(trace),
        )
        reply.raise_for_status()
        data = sorted(reply.json()["data"], key=lambda item: int(item["index"]))
        return [[float(x) for x in item["embedding"]] for item in data]

    def close_index(self) -> None:
        """Close the index (a pgvector one holds a database connection)."""
        if self._index is not None:
            self._index.close()
            self._index = None

    def _search(self, vector: list[float]) -> list[Hit]:
        if self._index is None:
            uri = self.config.index_uri
            remote = uri.startswith((S3_SCHEME, PGVECTOR_SCHEME))
            if not remote and not Path(uri).exists():
                raise NotIngestedError  # connecting would create the folder
            if read_identity(uri, environ=self.environ) is None:
                raise NotIngestedError
            self._index = open_location(uri, dimension=len(vector), environ=self.environ)
        return self._index.search(vector, k=self.config.top_k)

    async def _ask_model(
        self, request: dict[str, Any], trace: RequestTrace, *, citation: str
    ) -> AsyncIterator[str]:
        """The model's answer in pieces as they come, then the citation line; a
        ``chat <model>`` span in ``trace`` covers the call."""
        url = f"{self.config.base_url}/chat/completions"
        model = str(request["model"])
        attributes = {"gen_ai.operation.name": "chat", "gen_ai.request.model": model}
        with trace.span(f"chat {model}", kind=SpanKind.CLIENT, attributes=attributes) as step:
            stream = self.http().stream("POST", url, json=request, headers=step.headers)
            async with stream as reply:
                step.set("http.response.status_code", reply.status_code)
                if reply.status_code != 200:
                    await reply.aread()
                    raise ModelRefusedError(f"answered {reply.status_code}: {reply.text[:300]}")
                yield ""
                async for line in reply.aiter_lines():
                    if line.startswith("data: ") and line != "data: [DONE]":
                        for choice in json.loads(line[6:]).get("choices", []):
                            text = (choice.get("delta") or {}).get("content")
                            if text:
                                yield text
        yield f"\n\n{citation}"


async def _chain(first: str, rest: AsyncIterator[str]) -> AsyncIterator[str]:
    if first:
        yield first
    async for part in rest:
        yield part


app = DocsAssistant()
"""The entrypoint: ``llmfleet.examples.docs_assistant:app``."""
