"""OpenTelemetry spans for gateway requests, exported over OTLP/HTTP when configured.

One ``Tracing`` per gateway process (no global tracer provider): a request span
(``SERVER``), a child for the routing decision, one per upstream attempt
(``CLIENT``; a resume is an attempt marked ``llmfleet.resume``), and the W3C
``traceparent`` header for the engine. When no endpoint is configured the
gateway holds ``None`` instead of a ``Tracing``, so tracing costs one ``is None``
check per request and creates no spans.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

_PROPAGATOR = TraceContextTextMapPropagator()


class RequestTrace:
    """The spans of one client request; the gateway calls these few methods."""

    def __init__(self, tracing: Tracing, span: Span) -> None:
        self._tracing = tracing
        self.span = span
        self.status = 0

    @property
    def ids(self) -> tuple[str, str]:
        """(trace id, span id) in hex, as logs write them (ECS trace.id / span.id)."""
        ctx = self.span.get_span_context()
        return f"{ctx.trace_id:032x}", f"{ctx.span_id:016x}"

    def begin_attempt(
        self, replica: str, url: str, *, resume: bool, waited_s: float
    ) -> tuple[Span, dict[str, str]]:
        """Routing span, then the attempt's span and the headers that carry it upstream.

        A request that is not sampled gets no child spans, only its ``traceparent``
        (flag 00), so the engine and the logs still share its trace id."""
        if not self.span.is_recording():
            return self.span, self.headers(self.span)
        self.routed(replica, waited_s=waited_s)
        span = self.attempt(replica, url, resume=resume)
        return span, self.headers(span)

    def routed(self, replica: str, *, waited_s: float) -> None:
        """The routing decision, as a short child span."""
        span = self._tracing.child(self.span, "route", kind=SpanKind.INTERNAL)
        span.set_attribute("llmfleet.replica", replica)
        span.set_attribute("llmfleet.queue_wait_s", waited_s)
        span.end()

    def attempt(self, replica: str, url: str, *, resume: bool) -> Span:
        """A child span for one upstream attempt; end it with ``end_attempt``."""
        span = self._tracing.child(
            self.span, "resume" if resume else "upstream", kind=SpanKind.CLIENT
        )
        span.set_attribute("llmfleet.replica", replica)
        span.set_attribute("llmfleet.resume", resume)
        span.set_attribute("url.full", url)
        return span

    def end_attempt(self, span: Span, error: str | None = None) -> None:
        if span is self.span:  # not sampled: no attempt span was made
            return
        if error is not None:
            span.set_status(Status(StatusCode.ERROR, error))
        span.end()

    @staticmethod
    def headers(span: Span) -> dict[str, str]:
        """``traceparent`` for the engine, so its logs (and traces) join this request."""
        carrier: dict[str, str] = {}
        _PROPAGATOR.inject(carrier, context=trace.set_span_in_context(span))
        return carrier

    def end(self, status: int, usage: Mapping[str, Any] | None = None) -> None:
        self.span.set_attribute("http.response.status_code", status)
        for key in ("prompt_tokens", "completion_tokens"):
            if usage and isinstance(usage.get(key), int):
                self.span.set_attribute(f"gen_ai.usage.{key}", usage[key])
        if status >= 500:
            self.span.set_status(Status(StatusCode.ERROR))
        self.span.end()


class UnsampledTrace:
    """A request left out of the sample: ids and ``traceparent`` (flag 00) only.

    Made without the SDK (two random numbers and a string), so the requests
    that are not traced cost next to nothing; the engine and the request log
    still see a trace id.
    """

    def __init__(self, trace_id: int, span_id: int) -> None:
        self.ids = (f"{trace_id:032x}", f"{span_id:016x}")
        self._headers = {"traceparent": f"00-{self.ids[0]}-{self.ids[1]}-00"}

    def begin_attempt(
        self, replica: str, url: str, *, resume: bool, waited_s: float
    ) -> tuple[None, dict[str, str]]:
        return None, self._headers

    def end_attempt(self, span: object, error: str | None = None) -> None:
        pass

    def end(self, status: int, usage: Mapping[str, Any] | None = None) -> None:
        pass


class Tracing:
    """A tracer provider of its own and the spans the gateway makes with it."""

    def __init__(
        self,
        *,
        exporter: SpanExporter,
        service_name: str,
        batch: bool = True,
        sample_ratio: float = 1.0,
    ) -> None:
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

        self.provider = TracerProvider(
            resource=Resource.create({"service.name": service_name}),
            sampler=ParentBased(TraceIdRatioBased(sample_ratio)),
        )
        processor = BatchSpanProcessor(exporter) if batch else SimpleSpanProcessor(exporter)
        self.provider.add_span_processor(processor)
        self.tracer = self.provider.get_tracer("llmfleet.gateway")
        self.sample_ratio = sample_ratio
        self._random = random.Random()  # noqa: S311 - trace ids, as the SDK makes them

    def request(
        self, name: str, *, headers: Mapping[str, str], service: str, path: str
    ) -> RequestTrace | UnsampledTrace:
        """The span of one client request, child of the client's ``traceparent`` if any
        (whose sampling decision is kept); other requests are sampled at ``sample_ratio``."""
        if "traceparent" not in headers:
            if self._random.random() >= self.sample_ratio:
                draw = self._random.getrandbits
                return UnsampledTrace(draw(128) or 1, draw(64) or 1)
            parent = None
        else:
            parent = _PROPAGATOR.extract(dict(headers))
        span = self.tracer.start_span(name, context=parent, kind=SpanKind.SERVER)
        span.set_attribute("llmfleet.service", service)
        span.set_attribute("url.path", path)
        return RequestTrace(self, span)

    def child(self, parent: Span, name: str, *, kind: SpanKind) -> Span:
        return self.tracer.start_span(name, context=trace.set_span_in_context(parent), kind=kind)

    def flush(self) -> None:
        self.provider.force_flush()

    def shutdown(self) -> None:
        self.provider.shutdown()


def build_tracing(
    endpoint: str | None, *, service_name: str, sample_ratio: float = 1.0
) -> Tracing | None:
    """OTLP/HTTP tracing to ``endpoint`` (``/v1/traces`` appended), or None when unset."""
    if not endpoint:
        return None
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    exporter = OTLPSpanExporter(endpoint=endpoint.rstrip("/") + "/v1/traces")
    return Tracing(exporter=exporter, service_name=service_name, sample_ratio=sample_ratio)
