"""The gateway's traces end to end: every kind of request gets its spans, and each upstream
attempt carries its own ``traceparent`` to the engine (flag 00 outside the sample)."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from multidict import CIMultiDict
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from llmfleet.backends.base import ReplicaState, ReplicaStatus
from llmfleet.observe.requests import RequestObserver
from llmfleet.observe.span_export import InProcessSink
from llmfleet.observe.tracing import Tracing, parse_traceparent
from tests.gateway.conftest import GatewayUnderTest, service, snapshot

CLIENT_PARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
    body = {"id": "c1", "object": "chat.completion.chunk", "created": 0, "model": "chat",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    return b"data: " + json.dumps(body).encode() + b"\n\n"


USAGE = {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
DONE = (b"data: " + json.dumps({"id": "c1", "object": "chat.completion.chunk", "created": 0,
                                "model": "chat", "choices": [], "usage": USAGE}).encode()
        + b"\n\ndata: [DONE]\n\n")


@dataclass
class Engine:
    """An OpenAI-style engine that notes each request's trace headers; ``break_first``
    cuts the first streamed answer after one token, as a dying replica would."""

    seen: list[tuple[str, str | None, str | None]] = field(default_factory=list)
    break_first: bool = False

    async def generate(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.seen.append((request.path, request.headers.get("traceparent"),
                          request.headers.get("tracestate")))
        if request.path == "/v1/embeddings":
            return web.json_response({"object": "list", "model": "chat", "usage": USAGE,
                                      "data": [{"object": "embedding", "index": 0,
                                                "embedding": [0.1]}]})
        if not body.get("stream"):
            return web.json_response({
                "id": "c1", "object": "chat.completion", "created": 0, "model": "chat",
                "usage": USAGE, "choices": [{"index": 0, "finish_reason": "stop",
                                             "message": {"role": "assistant", "content": "hi"}}]})
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(chunk({"role": "assistant", "content": "hi"}))
        if self.break_first:
            self.break_first = False
            assert request.transport is not None
            request.transport.abort()
            return response
        await response.write(chunk({"content": "!"}) + chunk({}, "stop") + DONE)
        return response

    @staticmethod
    async def health(_request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/health", self.health)
        for path in ("/v1/chat/completions", "/v1/embeddings"):
            app.router.add_post(path, self.generate)
        return app


Traced = tuple[GatewayUnderTest, Engine, InMemorySpanExporter]


@pytest.fixture
async def traced(make_gateway: Any) -> AsyncIterator[Callable[..., Awaitable[Traced]]]:
    """Factory: a gateway with tracing at ``ratio`` in front of two replicas of one
    scripted engine; the spans land in memory."""
    runners: list[web.AppRunner] = []

    async def make(ratio: float = 1.0, *, break_first: bool = False) -> Traced:
        engine = Engine(break_first=break_first)
        replicas = []
        for index in range(2):
            runner = web.AppRunner(engine.app(), access_log=None)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            runners.append(runner)
            port = runner.addresses[0][1]
            replicas.append(ReplicaStatus(
                replica_id=f"chat-{index}", environment="test", service="chat", slot=index,
                runtime_hash="h", engine="sim", engine_version="1.2.0",
                state=ReplicaState.READY, port=port, served_name="chat"))
        gut = await make_gateway(snapshot({"chat": service()}, replicas))
        exporter = InMemorySpanExporter()
        tracing = Tracing(InProcessSink(exporter, service_name="g"), sample_ratio=ratio)
        gut.gateway.observe = RequestObserver(tracing=tracing, lines=None, log_prompts=False,
                                              clock=time.monotonic)
        return gut, engine, exporter

    yield make
    for runner in runners:
        await runner.cleanup()


def spans_by_name(exporter: InMemorySpanExporter) -> dict[str, list[ReadableSpan]]:
    out: dict[str, list[ReadableSpan]] = {}
    for span in exporter.get_finished_spans():
        out.setdefault(span.name, []).append(span)
    return out


def attempt_parent(traceparent: str | None) -> tuple[str, str]:
    """(trace id, span id) that a traceparent the engine got names; flag 01."""
    assert traceparent is not None
    parsed = parse_traceparent(traceparent)
    assert parsed is not None and parsed[2], traceparent
    return parsed[0], parsed[1]


MESSAGES = [{"role": "user", "content": "hello"}]


@pytest.mark.parametrize(("path", "body"), [
    ("/v1/chat/completions", {"messages": MESSAGES}),  # resumable: streamed upstream
    ("/v1/chat/completions", {"messages": MESSAGES, "stream": True}),
    # not resumable, so passed through as it came (tools would be too, but the sim
    # engine this service names cannot call them: 400)
    ("/v1/chat/completions", {"messages": MESSAGES, "logprobs": True}),
    ("/v1/embeddings", {"input": "hello"}),
])
async def test_every_kind_of_request_has_spans_and_sends_its_attempts_span(
    traced: Callable[..., Awaitable[Traced]], path: str, body: dict[str, Any]
) -> None:
    gut, engine, exporter = await traced()
    status, _, _ = await gut.post(path, {"model": "chat", **body},
                                  headers={"traceparent": CLIENT_PARENT})
    assert status == 200
    spans = spans_by_name(exporter)
    assert set(spans) == {f"POST {path}", "route", "upstream"}
    (root,), (upstream,) = spans[f"POST {path}"], spans["upstream"]
    assert f"{root.context.trace_id:032x}" == "0af7651916cd43dd8448eb211c80319c"
    assert root.parent is not None and root.parent.is_remote
    assert upstream.parent is not None and upstream.parent.span_id == root.context.span_id
    assert root.attributes is not None
    assert root.attributes["http.response.status_code"] == 200
    assert root.attributes["gen_ai.usage.completion_tokens"] == 2
    ((seen_path, traceparent, _),) = engine.seen
    assert seen_path == path
    assert attempt_parent(traceparent) == (
        "0af7651916cd43dd8448eb211c80319c", f"{upstream.context.span_id:016x}")


async def test_a_resumed_answer_sends_each_attempt_its_own_span(
    traced: Callable[..., Awaitable[Traced]],
) -> None:
    gut, engine, exporter = await traced(break_first=True)
    status, data, _ = await gut.post("/v1/chat/completions",
                                     {"model": "chat", "messages": MESSAGES})
    assert status == 200 and data["choices"][0]["message"]["content"] == "hi!"
    spans = spans_by_name(exporter)
    (first,), (resume,) = spans["upstream"], spans["resume"]
    assert first.status.status_code.name == "ERROR"
    parents = [attempt_parent(traceparent) for _, traceparent, _ in engine.seen]
    assert [span_id for _, span_id in parents] == [
        f"{first.context.span_id:016x}", f"{resume.context.span_id:016x}"]
    assert len({trace_id for trace_id, _ in parents}) == 1


async def test_outside_the_sample_the_engine_gets_the_trace_id_and_flag_00(
    traced: Callable[..., Awaitable[Traced]],
) -> None:
    gut, engine, exporter = await traced(ratio=0.0, break_first=True)
    status, _, _ = await gut.post("/v1/chat/completions", {"model": "chat", "messages": MESSAGES})
    assert status == 200
    status, _, _ = await gut.post(
        "/v1/chat/completions", {"model": "chat", "messages": MESSAGES},
        headers={"traceparent": CLIENT_PARENT[:-2] + "00", "tracestate": "vendor=1"})
    assert status == 200
    assert exporter.get_finished_spans() == ()
    ours, resumed, clients = engine.seen
    assert ours[1] == resumed[1]  # a resume keeps the unsampled request's ids
    for _, traceparent, _ in (ours, clients):
        assert traceparent is not None and traceparent.endswith("-00")
        assert parse_traceparent(traceparent) is not None
    assert clients[1] is not None and clients[1].startswith("00-0af7651916cd43dd8448eb211c80319c-")
    assert clients[2] == "vendor=1"


async def test_two_traceparent_headers_are_invalid_and_start_a_trace_of_our_own(
    traced: Callable[..., Awaitable[Traced]],
) -> None:
    gut, engine, exporter = await traced()
    other = "00-1af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    headers = CIMultiDict([("traceparent", CLIENT_PARENT), ("traceparent", other)])
    status, _, _ = await gut.post("/v1/chat/completions", {"model": "chat", "messages": MESSAGES},
                                  headers=headers)
    assert status == 200
    (root,) = spans_by_name(exporter)["POST /v1/chat/completions"]
    assert root.parent is None
    assert f"{root.context.trace_id:032x}" not in (CLIENT_PARENT[3:35], other[3:35])
    assert attempt_parent(engine.seen[0][1])[0] == f"{root.context.trace_id:032x}"
