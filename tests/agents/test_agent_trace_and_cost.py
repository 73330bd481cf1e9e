"""The shipped docs assistant run by a real local fleet with tracing on: one request to it
through the gateway is one trace, from the gateway's span of the agent request through
the agent's own spans (``retrieve``, ``search docs``, ``chat chat``) to the gateway's spans
of the agent's calls to its models; and ``llmfleet costs`` prices the agent's calls.

Real parts: the gateway and local agent, the sim engine as the chat and embedding models,
LanceDB filled by ``llmfleet ingest``, ``llmfleet.examples.docs_assistant`` under uvicorn,
and an OTLP/HTTP receiver that decodes what the gateway and the agent export."""

from __future__ import annotations

import gzip
import json
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import openai
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tests.fixtures.fleet import Fleet

SPEC = """
services:
  chat:
    model: sim:tiny
    engine: {kind: sim, version: "1.2.0"}
  embed:
    model: sim:embed
    engine: {kind: sim, version: "1.2.0"}
indexes:
  docs: {embedding: embed, dimension: 64}
pipelines:
  docs: {source: handbook, include: ["**/*.md"], index: docs}
agents:
  docs-assistant:
    entrypoint: llmfleet.examples.docs_assistant:app
    models: [chat, embed]
    indexes: [docs]
    env: {DOCS_CHAT_MODEL: chat, DOCS_EMBEDDING: embed, DOCS_TOP_K: "2",
          OTEL_BSP_SCHEDULE_DELAY: "100"}
observability: {otlp_endpoint: "http://127.0.0.1:OTLP_PORT", trace_sample_ratio: 1.0}
costs:
  cpu: {provider: gcp, price_per_vcpu_hour: 0.031611, price_per_gib_hour: 0.004237}
environments:
  production: {gateway: {port: GATEWAY_PORT}}
"""
HANDBOOK = {
    "rollback.md": "# Rolling back\n\nTo roll back a bad release, run llmfleet rollback: it "
    "restores the previous revision of the fleet.",
    "keys.md": "# API keys\n\nEach API key is scoped to the services it may call; a call to "
    "any other service is refused with 403.",
}


@dataclass(frozen=True)
class Span:
    service: str
    """the exporter's ``service.name``"""
    name: str
    trace_id: str
    span_id: str
    parent: str
    attributes: dict[str, object]


class Receiver(ThreadingHTTPServer):
    """An OTLP/HTTP endpoint on loopback: POST /v1/traces, protobuf, as collectors decode it."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.spans: list[Span] = []
        self.lock = threading.Lock()

    def keep(self, message: ExportTraceServiceRequest) -> None:
        for rs in message.resource_spans:
            resource = {a.key: a.value.string_value for a in rs.resource.attributes}
            for scope in rs.scope_spans:
                for s in scope.spans:
                    attributes = {a.key: _value(a.value) for a in s.attributes}
                    with self.lock:
                        self.spans.append(
                            Span(resource["service.name"], s.name, s.trace_id.hex(),
                                 s.span_id.hex(), s.parent_span_id.hex(), attributes)
                        )  # fmt: skip


def _value(value: Any) -> object:
    """An OTLP ``AnyValue`` as Python: whichever of its fields is set."""
    return getattr(value, value.WhichOneof("value"))


class _Handler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        message = ExportTraceServiceRequest()
        message.ParseFromString(body)
        self.server.keep(message)
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(5)


def _trace_of_the_agent_request(receiver: Receiver, timeout: float = 20) -> list[Span]:
    """The spans of the trace whose root is the gateway's request to the agent, once the
    gateway's spans of the chat call (the agent's last) have arrived."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with receiver.lock:
            spans = list(receiver.spans)
        roots = [s for s in spans if s.name == "POST /v1/chat/completions" and not s.parent
                 and s.attributes.get("llmfleet.service") == "docs-assistant"]  # fmt: skip
        if roots:
            trace = [s for s in spans if s.trace_id == roots[0].trace_id]
            names = {(s.service, s.name) for s in trace}
            if {("docs-assistant", "chat chat"), ("docs-assistant", "retrieve")} <= names and [
                s for s in trace if s.attributes.get("llmfleet.service") == "chat"
            ]:
                return trace
        time.sleep(0.1)
    raise AssertionError(f"no complete trace of the agent request: {receiver.spans}")


def test_one_request_to_the_docs_assistant_is_one_trace_and_its_calls_are_priced(
    fleet: Fleet, receiver: Receiver
) -> None:
    """gateway request (docs-assistant) > upstream attempt > agent retrieve > search docs,
    and > gateway POST /v1/embeddings; attempt > agent chat chat > gateway POST
    /v1/chat/completions (chat). Then bench measures chat, and costs prices the agent's
    chat tokens at it and its embedding tokens at embed's live rate."""
    fleet.write(SPEC.replace("OTLP_PORT", str(receiver.server_address[1])))
    (fleet.root / "handbook").mkdir()
    for name, text in HANDBOOK.items():
        (fleet.root / "handbook" / name).write_text(text)
    fleet.run("apply", "--yes")
    fleet.run("ingest", "docs")
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{fleet.gateway_port}/v1", api_key="x")
    answer = client.chat.completions.create(
        model="docs-assistant", messages=[{"role": "user", "content": "How do I roll back?"}]
    )
    assert "Sources:\n[1] rollback.md" in (answer.choices[0].message.content or "")

    trace = _trace_of_the_agent_request(receiver)
    by_id = {s.span_id: s for s in trace}

    def parent_of(span: Span) -> Span:
        return by_id[span.parent]

    (root,) = [s for s in trace if not s.parent]
    assert root.service == "llmfleet-gateway-production"
    (attempt,) = [s for s in trace if s.name == "upstream" and parent_of(s) is root]
    (retrieve,) = [s for s in trace if s.name == "retrieve"]
    (search,) = [s for s in trace if s.name == "search docs"]
    (chat_call,) = [s for s in trace if s.name == "chat chat"]
    assert {retrieve.service, search.service, chat_call.service} == {"docs-assistant"}
    assert parent_of(retrieve) is attempt and parent_of(chat_call) is attempt
    assert parent_of(search) is retrieve and search.attributes["llmfleet.hits"] == 2
    embeddings = [s for s in trace if s.name == "POST /v1/embeddings"]
    assert len(embeddings) == 2  # the question, then the lines to quote
    assert all(parent_of(s) is retrieve for s in embeddings)
    assert all(s.attributes["llmfleet.service"] == "embed" for s in embeddings)
    (chat_request,) = [s for s in trace if s.attributes.get("llmfleet.service") == "chat"
                       and s.name == "POST /v1/chat/completions"]  # fmt: skip
    assert parent_of(chat_request) is chat_call
    assert chat_request.service == root.service  # the gateway's own span of the call

    bench = fleet.run("bench", "chat", "--concurrency", "2", "--duration", "2",
                      "--max-tokens", "16")  # fmt: skip
    assert "recorded as measurement(s)" in bench.stdout, bench.stdout
    body = json.loads(fleet.run("costs", "--json").stdout)
    chat = next(s for s in body["services"] if s["service"] == "chat")
    (agent,) = body["agents"]
    assert agent["agent"] == "docs-assistant" and agent["per_hour"] is not None
    calls = {c["service"]: c for c in agent["calls"]}
    counted = _gateway_agent_tokens(fleet)
    assert calls["chat"]["prompt_tokens"] == counted["chat", "prompt"] > 0
    assert calls["chat"]["completion_tokens"] == counted["chat", "completion"] > 0
    assert calls["chat"]["cost"] == pytest.approx(
        counted["chat", "prompt"] / 1e6 * chat["per_million_input_tokens"]
        + counted["chat", "completion"] / 1e6 * chat["per_million_output_tokens"]
    )
    assert calls["embed"]["prompt_tokens"] == counted["embed", "prompt"] > 0
    # embed was not benched (bench measures chat): its $/hour over its live input rate
    embed = next(s for s in body["services"] if s["service"] == "embed")
    live_rate = embed["per_hour"] / (embed["live"]["input_tokens_per_s"] * 3600) * 1e6
    assert calls["embed"]["per_million_input_tokens"] == {
        "value": pytest.approx(live_rate),
        "basis": "live",
    }
    assert calls["embed"]["cost"] == pytest.approx(counted["embed", "prompt"] / 1e6 * live_rate)
    assert agent["unpriced_calls"] == []
    assert agent["calls_cost"] == pytest.approx(calls["chat"]["cost"] + calls["embed"]["cost"])
    table = fleet.run("costs").stdout
    assert "Agents: their calls to the models" in table, table
    # its own replica at its resources (a quarter vCPU, 512Mi), not a model service's
    assert re.search(r"docs-assistant\W+own replicas \(1\)\W+\$0\.01002/hour", table), table
    assert " live " in table and "e-0" not in table  # embed's live rate; no 6.5e-06


def _gateway_agent_tokens(fleet: Fleet) -> dict[tuple[str, str], float]:
    text = httpx.get(f"http://127.0.0.1:{fleet.gateway_port}/metrics").text
    pattern = (r'^llmfleet_gateway_agent_tokens_total\{agent="docs-assistant",kind="(\w+)",'
               r'service="(\w+)"\} (\S+)$')  # fmt: skip
    return {(m[2], m[1]): float(m[3]) for m in re.finditer(pattern, text, re.MULTILINE)}
