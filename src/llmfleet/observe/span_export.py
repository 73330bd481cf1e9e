"""The gateway's span records, turned into OpenTelemetry spans and exported over OTLP.

The gateway does not encode or send spans itself: on its one event loop that
work (about 40 µs a span in the SDK's encoder, plus the HTTP export) would hold
the GIL between requests. It writes compact records (``tracing.Record``) to a
child process instead, which runs this module::

    python -m llmfleet.observe.span_export --endpoint URL --service-name NAME

and reads frames from stdin: ``S`` + 4-byte length + a JSON list of records,
or ``F`` + 4 zero bytes, a flush, answered with a line on stdout once every
span before it has been exported. End of input: export what is left and exit.
Each record becomes the SDK's ``ReadableSpan`` and goes through the SDK's
``BatchSpanProcessor`` and ``OTLPSpanExporter`` (with a faster encoder,
``FastOTLPSpanExporter``); the same conversion serves in-process export
(``InProcessSink``), which the tests use with the SDK's in-memory exporter.
"""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Sequence
from typing import Any

import orjson
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.common.v1.common_pb2 import InstrumentationScope as ScopeProto
from opentelemetry.proto.resource.v1.resource_pb2 import Resource as ResourceProto
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, SpanFlags
from opentelemetry.proto.trace.v1.trace_pb2 import Status as StatusProto
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import (
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    TraceState,
)

from llmfleet.observe.tracing import FLUSHED, Record

_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_KINDS = list(SpanKind)
_CODES = list(StatusCode)
_HAS_REMOTE = SpanFlags.SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK
_IS_REMOTE = _HAS_REMOTE | SpanFlags.SPAN_FLAGS_CONTEXT_IS_REMOTE_MASK


class _Resource(Resource):
    """A resource whose hash is computed once.

    The OTLP encoder groups spans by resource and hashes it for every span; the
    SDK's hash serialises all attributes to JSON each time (a fifth of the
    export's cost). A process's resource never changes, so once is enough."""

    @functools.cached_property
    def _hash(self) -> int:
        return super().__hash__()

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        return self is other or super().__eq__(other)


class SpanBuilder:
    """Records to ``ReadableSpan`` for one service: its resource and scope."""

    def __init__(self, service_name: str) -> None:
        self.resource = _Resource(Resource.create({"service.name": service_name}).attributes)
        self.scope = InstrumentationScope("llmfleet.gateway")
        self._states: dict[str, TraceState] = {}

    def _state(self, header: str) -> TraceState | None:
        if not header:
            return None
        state = self._states.get(header)
        if state is None:
            state = TraceState.from_header([header])
            if len(self._states) < 1024:
                self._states[header] = state
        return state

    def span(self, record: Record) -> ReadableSpan:
        """One record (see ``tracing.Record``) as the SDK's finished span."""
        (
            name,
            trace_hex,
            span_hex,
            parent_hex,
            remote_parent,
            kind,
            start,
            end,
            attributes,
            code,
            description,
            state_header,
        ) = record
        trace_id = int(trace_hex, 16)
        state = self._state(state_header)
        parent = (
            SpanContext(trace_id, int(parent_hex, 16), remote_parent, _SAMPLED, state)
            if parent_hex
            else None
        )
        return ReadableSpan(
            name,
            SpanContext(trace_id, int(span_hex, 16), False, _SAMPLED, state),
            parent,
            self.resource,
            attributes,
            kind=_KINDS[kind],
            status=Status(_CODES[code], description),
            start_time=start,
            end_time=end,
            instrumentation_scope=self.scope,
        )


class SpanEncoder:
    """``ReadableSpan`` to the OTLP protobuf request, as the SDK's encoder writes it.

    The same message (a test compares them) in less than half the time: it encodes
    only what llmfleet's spans carry (no events or links; attributes of str, bool,
    int and float) and reuses the ``KeyValue`` of an attribute seen before (the
    service, the path, the replica repeat on every request)."""

    def __init__(self, size: int = 4096) -> None:
        self._size = size
        self._attributes: dict[tuple[str, object, type], KeyValue] = {}

    def supports(self, span: ReadableSpan) -> bool:
        """Whether ``span`` is of the kind this encodes; the SDK's encoder takes the others."""
        scope = span.instrumentation_scope
        return (
            not span.events
            and not span.links
            and all(
                isinstance(value, str | bool | int | float)
                for attributes in (
                    span.attributes,
                    span.resource.attributes,
                    scope.attributes if scope else None,
                )
                for value in (attributes or {}).values()
            )
        )

    def _attribute(self, key: str, value: object) -> KeyValue:
        cache_key = (key, value, type(value))  # True and 1 are equal keys, not equal values
        encoded = self._attributes.get(cache_key)
        if encoded is None:
            if isinstance(value, bool):
                any_value = AnyValue(bool_value=value)
            elif isinstance(value, str):
                any_value = AnyValue(string_value=value)
            elif isinstance(value, int):
                any_value = AnyValue(int_value=value)
            else:
                any_value = AnyValue(double_value=float(value))  # type: ignore[arg-type]
            encoded = KeyValue(key=key, value=any_value)
            if not isinstance(value, float) and len(self._attributes) < self._size:
                self._attributes[cache_key] = encoded
        return encoded

    def span(self, span: ReadableSpan) -> Span:
        context, parent, state = span.context, span.parent, span.context.trace_state
        attribute = self._attribute
        return Span(
            trace_id=context.trace_id.to_bytes(16, "big"),
            span_id=context.span_id.to_bytes(8, "big"),
            trace_state=",".join(f"{k}={v}" for k, v in state.items()) if state else "",
            parent_span_id=parent.span_id.to_bytes(8, "big") if parent else b"",
            name=span.name,
            kind=Span.SpanKind.ValueType(
                span.kind.value + 1
            ),  # the protobuf enum starts UNSPECIFIED
            start_time_unix_nano=span.start_time or 0,
            end_time_unix_nano=span.end_time or 0,
            attributes=[attribute(k, v) for k, v in (span.attributes or {}).items()],
            status=StatusProto(
                code=StatusProto.StatusCode.ValueType(span.status.status_code.value),
                message=span.status.description or "",
            ),
            flags=_IS_REMOTE if parent and parent.is_remote else _HAS_REMOTE,
        )

    def request(self, spans: Sequence[ReadableSpan]) -> ExportTraceServiceRequest:
        """Spans grouped by resource, then by instrumentation scope, in order of appearance
        (by identity: a process has one of each, where the SDK's encoder compares them)."""
        resources: dict[int, tuple[Resource, dict[int, tuple[Any, list[Span]]]]] = {}
        for span in spans:
            _, scopes = resources.setdefault(id(span.resource), (span.resource, {}))
            scope = span.instrumentation_scope or None
            _, encoded = scopes.setdefault(id(scope), (scope, []))
            encoded.append(self.span(span))
        return ExportTraceServiceRequest(
            resource_spans=[
                ResourceSpans(
                    resource=ResourceProto(attributes=self._attributes_of(resource.attributes)),
                    scope_spans=[
                        ScopeSpans(
                            scope=self._scope(scope),
                            spans=encoded,
                            schema_url=scope.schema_url if scope else "",
                        )
                        for scope, encoded in scopes.values()
                    ],
                    schema_url=resource.schema_url,
                )
                for resource, scopes in resources.values()
            ]
        )

    def _attributes_of(self, attributes: Any) -> list[KeyValue]:
        return [self._attribute(k, v) for k, v in (attributes or {}).items()]

    def _scope(self, scope: InstrumentationScope | None) -> ScopeProto | None:
        if scope is None:
            return None
        return ScopeProto(
            name=scope.name,
            version=scope.version or "",
            attributes=self._attributes_of(scope.attributes),
        )


class FastOTLPSpanExporter(OTLPSpanExporter):
    """The SDK's OTLP/HTTP span exporter (endpoint, headers, TLS, compression, retries
    from its arguments and the ``OTEL_EXPORTER_OTLP_*`` variables) with ``SpanEncoder``
    in place of its encoder, which took 65 µs of the exporter process's CPU per span.

    The encoded request goes through the exporter's own HTTP client, which is not
    public API: where an SDK version lacks it, or a span carries what ``SpanEncoder``
    does not encode, the SDK's ``export`` does the whole job as before."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.encoder = SpanEncoder()
        client = getattr(self, "_client", None)
        self.fast = callable(getattr(client, "export", None))

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if not self.fast or getattr(self, "_shutdown", False):
            return super().export(spans)
        if not all(self.encoder.supports(span) for span in spans):
            return super().export(spans)
        data = self.encoder.request(spans).SerializeToString()
        result = self._client.export(data)
        return (
            SpanExportResult.SUCCESS
            if getattr(result, "success", False)
            else SpanExportResult.FAILURE
        )


class InProcessSink:
    """Records exported from this process through the SDK: for tests and tools.

    ``batch=False`` exports each span as it ends (the in-memory exporter then
    holds it at once)."""

    def __init__(self, exporter: SpanExporter, *, service_name: str, batch: bool = False) -> None:
        self.builder = SpanBuilder(service_name)
        self.processor: SpanProcessor = (
            BatchSpanProcessor(exporter) if batch else SimpleSpanProcessor(exporter)
        )

    def add(self, record: Record) -> None:
        self.processor.on_end(self.builder.span(record))

    def flush(self, timeout_s: float = 10.0) -> bool:
        return self.processor.force_flush(int(timeout_s * 1000))

    def close(self, timeout_s: float = 10.0) -> None:
        self.processor.shutdown()


def serve(stdin: Any, stdout: Any, sink: InProcessSink) -> None:
    """Read frames until the end of input (see the module docstring)."""
    while True:
        head = stdin.read(5)
        if len(head) < 5:
            return
        size = int.from_bytes(head[1:], "big")
        if head[:1] == b"S":
            for record in orjson.loads(stdin.read(size)):
                sink.add(record)
        elif head[:1] == b"F":
            sink.flush()
            stdout.write(FLUSHED)
            stdout.flush()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m llmfleet.observe.span_export")
    parser.add_argument("--endpoint", required=True, help="OTLP/HTTP traces URL")
    parser.add_argument("--service-name", required=True)
    args = parser.parse_args(argv)
    from llmfleet.observe.logs import configure_logging

    configure_logging(service_name=args.service_name, level="WARNING")
    sink = InProcessSink(
        FastOTLPSpanExporter(endpoint=args.endpoint),
        service_name=args.service_name,
        batch=True,
    )
    try:
        serve(sys.stdin.buffer, sys.stdout.buffer, sink)
    except KeyboardInterrupt:  # the gateway's Ctrl-C reaches its process group too
        pass
    finally:
        sink.close()


if __name__ == "__main__":
    main()
