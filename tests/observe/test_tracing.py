"""Gateway spans: request, routing, attempts, resume; traceparent; a real OTLP/HTTP receiver."""

from __future__ import annotations

import asyncio
import gzip
import re
import socket
from collections.abc import AsyncIterator

import orjson
import pytest
from aiohttp import web
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from llmfleet.observe.span_export import InProcessSink, RecordEncoder, RecordExporter, SpanBuilder
from llmfleet.observe.tracing import (
    ExporterProcess,
    Record,
    RequestTrace,
    Tracing,
    build_tracing,
    head_ids,
    parse_traceparent,
)

TRACEPARENT = re.compile(r"^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$")


def header(head: bytes, name: str) -> str:
    """One header's value in header lines for the engine (each ending in CRLF)."""
    lines = head.decode("latin-1").split("\r\n")
    assert lines[-1] == ""  # every line ends in CRLF
    values = [line.partition(": ")[2] for line in lines if line.startswith(name + ": ")]
    assert len(values) == 1, head
    return values[0]


def traced_request(tracing: Tracing, headers: dict[str, str] | None = None) -> RequestTrace:
    """What the gateway does for a request that fails once, then resumes elsewhere."""
    headers = headers or {}
    request = tracing.request(service="chat", path="/v1/chat/completions",
                              traceparent=headers.get("traceparent"),
                              tracestate=headers.get("tracestate"))
    assert isinstance(request, RequestTrace)
    first, _ = request.begin_attempt("r0", "http://127.0.0.1:1/v1/chat/completions",
                                     resume=False, waited_s=0.001)
    request.end_attempt(first, "connection reset after 12 tokens")
    second, head = request.begin_attempt("r1", "http://127.0.0.1:2/v1/chat/completions",
                                         resume=True, waited_s=0.0)
    assert header(head, "traceparent") == f"00-{request.trace_id}-{second[2]}-01"
    request.end_attempt(second)
    request.end(200, {"prompt_tokens": 5, "completion_tokens": 20})
    return request


def test_spans_of_a_request_with_a_resume() -> None:
    """One trace: request (server) > route, upstream (error), route, resume (client)."""
    exporter = InMemorySpanExporter()
    tracing = Tracing(InProcessSink(exporter, service_name="llmfleet-gateway"))
    request = traced_request(tracing)
    spans = {s.name: s for s in exporter.get_finished_spans()}
    assert set(spans) == {"POST /v1/chat/completions", "route", "upstream", "resume"}
    root = spans["POST /v1/chat/completions"]
    assert all(s.context.trace_id == root.context.trace_id for s in spans.values())
    assert spans["resume"].parent is not None
    assert spans["resume"].parent.span_id == root.context.span_id
    assert spans["upstream"].status.status_code.name == "ERROR"
    assert spans["resume"].attributes["llmfleet.resume"] is True
    assert root.attributes["gen_ai.usage.completion_tokens"] == 20
    assert request.ids[0] == f"{root.context.trace_id:032x}"
    tracing.shutdown()


def test_a_client_traceparent_becomes_the_parent() -> None:
    exporter = InMemorySpanExporter()
    tracing = Tracing(InProcessSink(exporter, service_name="g"))
    parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    traced_request(tracing, {"traceparent": parent})
    root = next(s for s in exporter.get_finished_spans() if s.name.startswith("POST"))
    assert f"{root.context.trace_id:032x}" == "0af7651916cd43dd8448eb211c80319c"
    tracing.shutdown()


def test_no_endpoint_means_no_tracing() -> None:
    assert build_tracing(None, service_name="g") is None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
async def otlp_receiver() -> AsyncIterator[tuple[str, list[ExportTraceServiceRequest]]]:
    """A real OTLP/HTTP endpoint: POST /v1/traces with protobuf, decoded as collectors do."""
    received: list[ExportTraceServiceRequest] = []

    async def traces(request: web.Request) -> web.Response:
        body = await request.read()
        if request.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        assert request.headers["Content-Type"] == "application/x-protobuf"
        message = ExportTraceServiceRequest()
        message.ParseFromString(body)
        received.append(message)
        return web.Response(body=b"", content_type="application/x-protobuf")

    app = web.Application()
    app.router.add_post("/v1/traces", traces)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield f"http://127.0.0.1:{port}", received
    await runner.cleanup()


async def test_spans_arrive_at_a_real_otlp_http_endpoint(
    otlp_receiver: tuple[str, list[ExportTraceServiceRequest]],
) -> None:
    """The OTLP/HTTP exporter sends protobuf spans with our service.name to the endpoint."""
    endpoint, received = otlp_receiver
    tracing = build_tracing(endpoint, service_name="llmfleet-gateway")
    assert tracing is not None
    traced_request(tracing)
    await asyncio.to_thread(tracing.flush)
    spans = [span for message in received for rs in message.resource_spans
             for ss in rs.scope_spans for span in ss.spans]
    assert {s.name for s in spans} == {"POST /v1/chat/completions", "route", "upstream", "resume"}
    resource = received[0].resource_spans[0].resource
    names = {a.key: a.value.string_value for a in resource.attributes}
    assert names["service.name"] == "llmfleet-gateway"
    await asyncio.to_thread(tracing.shutdown)


def test_unsampled_requests_make_no_spans_but_keep_a_trace_id() -> None:
    """Outside the sample: no SDK spans, a traceparent with flag 00 and ids for the log."""
    exporter = InMemorySpanExporter()
    tracing = Tracing(InProcessSink(exporter, service_name="g"), sample_ratio=0.0)
    heads = [tracing.request(service="chat", path="/v1/chat/completions") for _ in range(100)]
    assert exporter.get_finished_spans() == ()
    assert all(isinstance(head, bytes) for head in heads) and len(set(heads)) == 100
    trace_id, span_id = head_ids(heads[0])
    assert heads[0] == f"traceparent: 00-{trace_id}-{span_id}-00\r\n".encode()
    assert TRACEPARENT.match(header(heads[0], "traceparent"))
    assert int(trace_id, 16) != 0 and int(span_id, 16) != 0
    sampled = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    traced_request(tracing, {"traceparent": sampled})  # the client's decision is kept
    assert len(exporter.get_finished_spans()) == 5  # request, 2 routes, 2 attempts
    tracing.shutdown()


def test_the_sample_ratio_is_the_share_of_requests_traced() -> None:
    """A root the gateway chose to sample is recorded: the SDK must not draw a second time
    (which traced ratio squared: 1% of requests at the default 0.1)."""
    exporter = InMemorySpanExporter()
    tracing = Tracing(InProcessSink(exporter, service_name="g"), sample_ratio=0.5)
    traces = [tracing.request(service="chat", path="/v1/chat/completions") for _ in range(2000)]
    for trace in traces:
        if isinstance(trace, RequestTrace):
            trace.end(200)
    assert 850 <= len(exporter.get_finished_spans()) <= 1150
    assert len(exporter.get_finished_spans()) == sum(
        isinstance(t, RequestTrace) for t in traces)
    tracing.shutdown()


def test_route_span_covers_the_wait_for_a_replica() -> None:
    exporter = InMemorySpanExporter()
    tracing = Tracing(InProcessSink(exporter, service_name="g"))
    request = tracing.request(service="chat", path="/v1/chat/completions")
    request.begin_attempt("r0", "http://x", resume=False, waited_s=0.25)
    route = exporter.get_finished_spans()[0]
    assert route.end_time is not None and route.start_time is not None
    assert route.end_time - route.start_time == 250_000_000
    assert route.attributes["llmfleet.queue_wait_s"] == 0.25
    tracing.shutdown()


def test_a_client_that_did_not_sample_keeps_its_trace_id_and_state() -> None:
    """Flag 00 from the client: no spans here either, the same trace id and tracestate on."""
    exporter = InMemorySpanExporter()
    tracing = Tracing(InProcessSink(exporter, service_name="g"), sample_ratio=1.0)
    parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"
    trace = tracing.request(path="/", service="chat", traceparent=parent,
                            tracestate="vendor=abc")
    assert isinstance(trace, bytes)
    assert exporter.get_finished_spans() == ()
    assert head_ids(trace)[0] == "0af7651916cd43dd8448eb211c80319c"
    assert head_ids(trace)[1] != "b7ad6b7169203331"  # a span id of the gateway's own
    assert header(trace, "traceparent").startswith("00-0af7651916cd43dd8448eb211c80319c-")
    assert header(trace, "traceparent").endswith("-00")
    assert header(trace, "tracestate") == "vendor=abc"
    broken = tracing.request(path="/", service="chat", traceparent=parent,
                             tracestate="a=1\r\nEvil: 1")
    assert isinstance(broken, bytes) and b"Evil" not in broken
    tracing.shutdown()


@pytest.mark.parametrize("value", [
    "", "garbage", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331",
    "00-00000000000000000000000000000000-b7ad6b7169203331-01",
    "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
    "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra",
    "00-0af7651916cd43dd8448eb211c8031zz-b7ad6b7169203331-01",
])
def test_an_invalid_traceparent_is_ignored(value: str) -> None:
    """A bad header starts a trace of our own, as W3C trace context says."""
    assert parse_traceparent(value) is None
    exporter = InMemorySpanExporter()
    tracing = Tracing(InProcessSink(exporter, service_name="g"), sample_ratio=1.0)
    trace = tracing.request(service="chat", path="/", traceparent=value)
    trace.end(200)
    (root,) = exporter.get_finished_spans()
    assert root.parent is None
    tracing.shutdown()


def test_a_dead_exporter_process_costs_spans_not_requests() -> None:
    """The child gone: spans are dropped with one warning; the gateway's calls go on."""
    sink = ExporterProcess("http://127.0.0.1:9/v1/traces", service_name="g")
    sink.proc.kill()
    sink.proc.wait()
    tracing = Tracing(sink, sample_ratio=1.0)
    for _ in range(2 * ExporterProcess.BATCH):
        tracing.request(service="chat", path="/").end(200)
    assert sink.dead
    assert tracing.flush(timeout_s=1) is False
    tracing.shutdown()


class Records:
    """A span sink that keeps the records, as the exporter process receives them."""

    def __init__(self) -> None:
        self.records: list[Record] = []

    def add(self, record: Record) -> None:
        self.records.append(orjson.loads(orjson.dumps(record)))  # through the pipe's JSON

    def flush(self, timeout_s: float = 10.0) -> bool:
        return True

    def close(self, timeout_s: float = 10.0) -> None:
        pass


def test_the_record_encoder_writes_what_the_sdk_encoder_writes() -> None:
    """Every span the gateway makes (with a remote parent and tracestate, an error, a
    resume; str, bool, int and float attributes) encodes to the SDK encoder's message."""
    sink = Records()
    tracing = Tracing(sink)
    traced_request(tracing)
    traced_request(tracing, {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-"
                                            "b7ad6b7169203331-01", "tracestate": "a=1,b=2"})
    builder = SpanBuilder("llmfleet-gateway")
    spans = [builder.span(record) for record in sink.records]
    assert len(spans) == 10
    assert any(s.parent is not None and s.parent.is_remote for s in spans)
    assert any(s.context.trace_state for s in spans)
    assert any(isinstance(v, float) for s in spans for v in s.attributes.values())
    encoder = RecordEncoder(builder)
    assert all(encoder.supports(record) for record in sink.records)
    expected = encode_spans(spans)
    assert encoder.request(sink.records) == expected
    assert encoder.request(sink.records).SerializeToString() == expected.SerializeToString()
    assert encoder.request(sink.records) == expected  # again, from its cached attributes


def test_records_the_encoder_does_not_cover_go_through_the_sdk_exporter(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The gateway's records are encoded by ``RecordEncoder`` and sent through the
    installed SDK's HTTP client (the fast path is on); a batch with an attribute the
    encoder does not write (a list) goes through the SDK's own ``export``."""
    exporter = OTLPSpanExporter(endpoint="http://127.0.0.1:1/v1/traces")
    sent: list[bytes] = []
    sdk: list[int] = []

    class Client:
        def export(self, data: bytes) -> object:
            sent.append(data)
            return type("Result", (), {"success": True})()

    monkeypatch.setattr(exporter, "_client", Client())
    monkeypatch.setattr(
        OTLPSpanExporter, "export", lambda self, spans: sdk.append(len(spans)) or "sdk"
    )
    sink = RecordExporter(exporter, service_name="g")
    assert sink.fast
    records = Records()
    traced_request(Tracing(records))
    sink.add_all(records.records)
    assert sink.flush()
    spans = [sink.builder.span(record) for record in records.records]
    assert ExportTraceServiceRequest.FromString(sent[0]) == encode_spans(spans)
    odd = list(records.records[0])
    odd[8] = {"tags": ["a", "b"]}
    sink.add_all([odd])
    assert not sink.flush()  # the SDK's export (stubbed) answered "sdk", not SUCCESS
    assert sdk == [1] and len(sent) == 1


def test_records_wait_for_a_batch_or_the_delay() -> None:
    """Records are exported once ``BATCH`` are pending or the oldest is ``DELAY_S`` old."""
    now = [100.0]
    sent: list[int] = []

    class Exporter:
        _client = type("Client", (), {"export": lambda self, data: sent.append(len(data))
                                      or type("R", (), {"success": True})()})()

    sink = RecordExporter(Exporter(), service_name="g", clock=lambda: now[0])  # type: ignore[arg-type]
    records = Records()
    traced_request(Tracing(records))
    assert sink.due_in() is None
    sink.add_all(records.records)
    sink.export_due()
    assert not sent and sink.due_in() == pytest.approx(RecordExporter.DELAY_S)
    now[0] += RecordExporter.DELAY_S
    sink.export_due()
    assert len(sent) == 1 and sink.due_in() is None
    sink.add_all(records.records * (RecordExporter.BATCH // len(records.records) + 1))
    sink.export_due()
    assert len(sent) == 3  # one full batch and the rest, at once
