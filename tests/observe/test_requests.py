"""The gateway's per-request observability: spans, traceparent, one log line, no prompts."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from typing import Any

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from llmfleet.observe.logs import JsonLinesBuffer
from llmfleet.observe.requests import RequestObserver
from llmfleet.observe.span_export import InProcessSink
from llmfleet.observe.tracing import Tracing


@dataclass
class FakeCall:
    """The attributes of the gateway's Call that the observer reads and writes."""

    service: str = "chat"
    path: str = "/v1/chat/completions"
    body: dict[str, Any] = field(default_factory=lambda: {
        "messages": [{"role": "user", "content": "my secret plan"}]})
    started_at: float = 10.0
    attempts: list[object] = field(default_factory=list)
    replica: str | None = None
    trace: Any = None
    upstream_head: bytes = b""


@dataclass
class FakeReplica:
    replica_id: str = "r0"
    url: str = "http://127.0.0.1:9"


@pytest.fixture
def logged() -> io.StringIO:
    return io.StringIO()


def lines_to(stream: io.StringIO) -> JsonLinesBuffer:
    return JsonLinesBuffer(stream, service_name="llmfleet-gateway", logger="requests",
                           max_lines=1)


def test_nothing_on_means_no_observer() -> None:
    assert RequestObserver.from_env({"LLMFLEET_REQUEST_LOGS": "0"}, environment="p",
                                    clock=lambda: 0.0) is None


def test_a_traced_request_logs_its_trace_id_and_passes_traceparent(logged: io.StringIO) -> None:
    exporter = InMemorySpanExporter()
    observer = RequestObserver(tracing=Tracing(InProcessSink(exporter, service_name="g")),
                               lines=lines_to(logged), log_prompts=False, clock=lambda: 10.5)
    call = FakeCall()
    observer.start(call)
    replica = FakeReplica()
    span, call.upstream_head = call.trace.begin_attempt(
        replica.replica_id, replica.url + call.path, resume=False, waited_s=0.0)
    call.replica = "r0"
    assert call.upstream_head.startswith(b"traceparent: 00-")
    call.trace.end_attempt(span, None)
    observer.finish(call, "200", {"prompt_tokens": 3, "completion_tokens": 5}, None)
    line = json.loads(logged.getvalue().splitlines()[-1])
    root = next(s for s in exporter.get_finished_spans() if s.name.startswith("POST"))
    assert line["trace.id"] == f"{root.context.trace_id:032x}"
    assert line["trace.id"].encode() in call.upstream_head
    assert line["llmfleet.replica"] == "r0" and line["http.response.status_code"] == 200
    assert line["event.duration"] == 500_000_000 and line["llmfleet.completion_tokens"] == 5
    assert "secret" not in logged.getvalue()


def test_an_unsampled_request_logs_the_ids_the_engine_was_sent(logged: io.StringIO) -> None:
    exporter = InMemorySpanExporter()
    observer = RequestObserver(
        tracing=Tracing(InProcessSink(exporter, service_name="g"), sample_ratio=0.0),
        lines=lines_to(logged), log_prompts=False, clock=lambda: 10.5)
    call = FakeCall()
    observer.start(call)
    assert call.trace is None and call.upstream_head.startswith(b"traceparent: 00-")
    observer.finish(call, "200", None, None)
    line = json.loads(logged.getvalue())
    sent = call.upstream_head.decode().split(": ")[1].split("-")
    assert (line["trace.id"], line["span.id"]) == (sent[1], sent[2]) and sent[3] == "00\r\n"
    assert exporter.get_finished_spans() == ()


def test_prompts_are_logged_only_when_the_spec_says_so(logged: io.StringIO) -> None:
    observer = RequestObserver(tracing=None, lines=lines_to(logged), log_prompts=True,
                               clock=lambda: 11.0)
    call = FakeCall()
    observer.finish(call, "200", None, None)
    assert "secret" in logged.getvalue()


def test_a_failed_request_logs_the_error_status(logged: io.StringIO) -> None:
    class RefusedError(Exception):
        status = 503

    observer = RequestObserver(tracing=None, lines=lines_to(logged), log_prompts=False,
                               clock=lambda: 11.0)
    observer.finish(FakeCall(), "200", None, RefusedError("no replica"))
    assert json.loads(logged.getvalue())["http.response.status_code"] == 503
