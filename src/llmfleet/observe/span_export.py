"""The gateway's span records, turned into OpenTelemetry spans and exported over OTLP.

The gateway does not encode or send spans itself: on its one event loop that
work (about 40 µs a span in the SDK's encoder, plus the HTTP export) would hold
the GIL between requests. It writes compact records (``tracing.Record``) to a
child process instead, which runs this module::

    python -m llmfleet.observe.span_export --endpoint URL --service-name NAME

and reads frames from stdin: ``S`` + 4-byte length + a JSON list of records,
or ``F`` + 4 zero bytes, a flush, answered with a line on stdout once every
span before it has been exported. End of input: export what is left and exit.
``RecordExporter`` encodes the records into the OTLP protobuf request itself
(``RecordEncoder``, the same message the SDK's encoder writes) and sends it
with the SDK's ``OTLPSpanExporter``. ``SpanBuilder`` turns a record into the
SDK's ``ReadableSpan`` instead: for in-process export (``InProcessSink``, which
the tests use with the SDK's in-memory exporter) and for what the encoder does
not cover.
"""

from __future__ import annotations

import argparse
import functools
import os
import select
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import orjson
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.common.v1.common_pb2 import InstrumentationScope as ScopeProto
from opentelemetry.proto.resource.v1.resource_pb2 import Resource as ResourceProto
from opentelemetry.proto.trace.v1.trace_pb2 import SpanFlags
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
_ENCODED = (str, bool, int, float)


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


class RecordEncoder:
    """Records straight to the OTLP protobuf request, as the SDK's encoder writes the
    same spans (a test compares the two), without the SDK's span objects.

    The SDK's route (a ``ReadableSpan`` per record, its batch processor's queue and
    thread, its encoder) took about 35 µs of CPU per span; this one builds each
    span in place in the request, reuses the ``KeyValue`` of an attribute seen
    before (the service, the path, the replica repeat on every request) and costs
    a third of that. It encodes what the gateway's records carry: attributes of
    str, bool, int and float (``supports``); the SDK takes any other record."""

    def __init__(self, builder: SpanBuilder, size: int = 4096) -> None:
        self._size = size
        self._attributes: dict[tuple[str, object, type], KeyValue] = {}
        self._states: dict[str, str] = {}
        self.resource = ResourceProto(attributes=self._attributes_of(builder.resource.attributes))
        self.schema_url = builder.resource.schema_url
        scope = builder.scope
        self.scope = ScopeProto(
            name=scope.name,
            version=scope.version or "",
            attributes=self._attributes_of(scope.attributes),
        )
        self.scope_schema_url = scope.schema_url or ""

    @staticmethod
    def supports(record: Record) -> bool:
        return all(isinstance(value, _ENCODED) for value in record[8].values())

    def request(self, records: Sequence[Record]) -> ExportTraceServiceRequest:
        """One request: the process's resource and scope, then every record's span."""
        message = ExportTraceServiceRequest()
        resource_spans = message.resource_spans.add(schema_url=self.schema_url)
        resource_spans.resource.CopyFrom(self.resource)
        scope_spans = resource_spans.scope_spans.add(schema_url=self.scope_schema_url)
        scope_spans.scope.CopyFrom(self.scope)
        add, attribute = scope_spans.spans.add, self._attribute
        for (
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
        ) in records:
            span = add(
                trace_id=bytes.fromhex(trace_hex),
                span_id=bytes.fromhex(span_hex),
                trace_state=self._state(state_header) if state_header else "",
                parent_span_id=bytes.fromhex(parent_hex) if parent_hex else b"",
                name=name,
                kind=kind + 1,  # the protobuf enum starts with UNSPECIFIED
                start_time_unix_nano=start,
                end_time_unix_nano=end,
                flags=_IS_REMOTE if parent_hex and remote_parent else _HAS_REMOTE,
            )
            span.attributes.extend([attribute(k, v) for k, v in attributes.items()])
            status = span.status
            status.SetInParent()  # the SDK writes the status even when it is unset
            if code:
                status.code = code
            if description:
                status.message = description
        return message

    def _state(self, header: str) -> str:
        """A ``tracestate`` header as the SDK writes it back (parsed, then joined)."""
        state = self._states.get(header)
        if state is None:
            parsed = TraceState.from_header([header])
            state = ",".join(f"{k}={v}" for k, v in parsed.items())
            if len(self._states) < self._size:
                self._states[header] = state
        return state

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

    def _attributes_of(self, attributes: Any) -> list[KeyValue]:
        return [self._attribute(k, v) for k, v in (attributes or {}).items()]


class RecordExporter:
    """The exporter process's sink: records to OTLP/HTTP through the SDK's exporter.

    ``OTLPSpanExporter`` keeps its whole configuration (endpoint, headers, TLS,
    compression, timeout and retries, from its arguments and the
    ``OTEL_EXPORTER_OTLP_*`` variables) and sends; ``RecordEncoder`` encodes. The
    exporter's HTTP client is not public API: where an SDK version lacks it, or a
    record carries what the encoder does not encode, the records become SDK spans
    and the SDK's ``export`` does the whole job.

    Records wait until ``BATCH`` are pending or the oldest is ``DELAY_S`` old
    (``due_in`` says when; the serving loop calls ``export_due``)."""

    BATCH = 512
    DELAY_S = 1.0

    def __init__(
        self,
        exporter: OTLPSpanExporter,
        *,
        service_name: str,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.exporter = exporter
        self.builder = SpanBuilder(service_name)
        self.encoder = RecordEncoder(self.builder)
        self.clock = clock
        client = getattr(exporter, "_client", None)
        self.fast = callable(getattr(client, "export", None))
        self._pending: list[Record] = []
        self._since = 0.0

    def add_all(self, records: list[Record]) -> None:
        if records and not self._pending:
            self._since = self.clock()
        self._pending.extend(records)

    def due_in(self) -> float | None:
        """Seconds until the pending records must go; None when there are none."""
        if not self._pending:
            return None
        return max(0.0, self._since + self.DELAY_S - self.clock())

    def export_due(self) -> None:
        if len(self._pending) >= self.BATCH or self.due_in() == 0.0:
            self.flush()

    def flush(self) -> bool:
        """Export every pending record now; False if a batch failed."""
        records, self._pending = self._pending, []
        ok = True
        for index in range(0, len(records), self.BATCH):
            ok = self._export(records[index : index + self.BATCH]) and ok
        return ok

    def _export(self, records: list[Record]) -> bool:
        encoder = self.encoder
        if not self.fast or not all(encoder.supports(record) for record in records):
            spans = [self.builder.span(record) for record in records]
            return self.exporter.export(spans) == SpanExportResult.SUCCESS
        data = encoder.request(records).SerializeToString()
        result = self.exporter._client.export(data)  # private: see the class docstring
        return bool(getattr(result, "success", False))

    def close(self) -> None:
        self.flush()
        self.exporter.shutdown()  # type: ignore[no-untyped-call]


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


def serve(fd: int, stdout: Any, sink: RecordExporter) -> None:
    """Read frames from ``fd`` until the end of input (see the module docstring),
    exporting as ``sink`` says records are due."""
    buffer = bytearray()
    while True:
        ready, _, _ = select.select([fd], [], [], sink.due_in())
        if not ready:
            sink.export_due()
            continue
        data = os.read(fd, 1 << 16)
        if not data:
            return
        buffer += data
        while len(buffer) >= 5:
            size = int.from_bytes(buffer[1:5], "big")
            if len(buffer) < 5 + size:
                break
            kind, payload = buffer[:1], bytes(buffer[5 : 5 + size])
            del buffer[: 5 + size]
            if kind == b"S":
                sink.add_all(orjson.loads(payload))
            elif kind == b"F":
                sink.flush()
                stdout.write(FLUSHED)
                stdout.flush()
        sink.export_due()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m llmfleet.observe.span_export")
    parser.add_argument("--endpoint", required=True, help="OTLP/HTTP traces URL")
    parser.add_argument("--service-name", required=True)
    args = parser.parse_args(argv)
    from llmfleet.observe.logs import configure_logging

    configure_logging(service_name=args.service_name, level="WARNING")
    sink = RecordExporter(OTLPSpanExporter(endpoint=args.endpoint), service_name=args.service_name)
    try:
        serve(sys.stdin.fileno(), sys.stdout.buffer, sink)
    except KeyboardInterrupt:  # the gateway's Ctrl-C reaches its process group too
        pass
    finally:
        sink.close()


if __name__ == "__main__":
    main()
