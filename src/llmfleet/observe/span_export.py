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
``BatchSpanProcessor`` and ``OTLPSpanExporter``; the same conversion serves
in-process export (``InProcessSink``), which the tests use with the SDK's
in-memory exporter.
"""

from __future__ import annotations

import argparse
import functools
import sys
from typing import Any

import orjson
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExporter,
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
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    from llmfleet.observe.logs import configure_logging

    configure_logging(service_name=args.service_name, level="WARNING")
    sink = InProcessSink(
        OTLPSpanExporter(endpoint=args.endpoint), service_name=args.service_name, batch=True
    )
    try:
        serve(sys.stdin.buffer, sys.stdout.buffer, sink)
    except KeyboardInterrupt:  # the gateway's Ctrl-C reaches its process group too
        pass
    finally:
        sink.close()


if __name__ == "__main__":
    main()
