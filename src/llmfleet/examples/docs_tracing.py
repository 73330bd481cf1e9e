"""The docs assistant's trace: the client's context passed on, and spans of its own.

Every call the agent makes to the gateway carries W3C trace context, so the gateway's
spans of those calls join the trace of the request that reached the agent. When
OpenTelemetry is configured in the agent's environment with the standard variables
(``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``, or ``OTEL_EXPORTER_OTLP_ENDPOINT`` with
``/v1/traces`` appended; ``OTEL_SERVICE_NAME``; ``OTEL_SDK_DISABLED`` or
``OTEL_TRACES_EXPORTER=none`` turn it off), the agent also records spans of its own,
children of the incoming context: ``retrieve`` (with ``search <index>`` inside it, and
the embedding calls made under it) and ``chat <model>`` (the call to the chat model).
The calls made inside a span carry that span's context, so the trace reads
gateway > agent > gateway > engine.

Sampling follows the parent (the gateway decided, or the client); a request that
came with no context is sampled at ``OTEL_TRACES_SAMPLER_ARG`` (default 1). The
tracer provider is the agent's own, never the process-wide global one.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

PROPAGATED = ("traceparent", "tracestate")
_PROPAGATOR = TraceContextTextMapPropagator()


@dataclass(frozen=True)
class TraceSettings:
    """Where the agent's spans go, read once from its environment; ``endpoint`` None: off."""

    endpoint: str | None
    service_name: str
    sample_ratio: float = 1.0

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> TraceSettings:
        name = env.get("OTEL_SERVICE_NAME") or env.get("LLMFLEET_AGENT") or "docs-assistant"
        off = env.get("OTEL_SDK_DISABLED", "").lower() == "true" or (
            env.get("OTEL_TRACES_EXPORTER", "otlp").lower() == "none"
        )
        endpoint = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        if not endpoint and env.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
            endpoint = env["OTEL_EXPORTER_OTLP_ENDPOINT"].rstrip("/") + "/v1/traces"
        try:
            ratio = min(1.0, max(0.0, float(env.get("OTEL_TRACES_SAMPLER_ARG", "1"))))
        except ValueError:
            ratio = 1.0  # the SDK, too, falls back to its default on a bad value
        return cls(None if off else endpoint or None, name, ratio)


class Tracer:
    """The agent's spans, or none when ``settings.endpoint`` is None; one per app."""

    def __init__(self, settings: TraceSettings) -> None:
        self.settings = settings
        self._provider: Any = None
        self._tracer: trace.Tracer | None = None
        if settings.endpoint is not None:
            # imported only when tracing is on: the SDK and its exporter cost start-up time
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            from opentelemetry.sdk.resources import Resource
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import BatchSpanProcessor
            from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

            self._provider = TracerProvider(
                resource=Resource.create({"service.name": settings.service_name}),
                sampler=ParentBased(TraceIdRatioBased(settings.sample_ratio)),
            )
            exporter = OTLPSpanExporter(endpoint=settings.endpoint)
            self._provider.add_span_processor(BatchSpanProcessor(exporter))
            self._tracer = self._provider.get_tracer("llmfleet.examples.docs_assistant")

    def request(self, headers: Mapping[str, str]) -> RequestTrace:
        """The trace of one request, from its headers (lower-case names)."""
        passed = {name: headers[name] for name in PROPAGATED if name in headers}
        parent = _PROPAGATOR.extract(passed) if self._tracer is not None else None
        return RequestTrace(self._tracer, passed, parent)

    def shutdown(self) -> None:
        """Export what is left; the app calls it at shutdown."""
        if self._provider is not None:
            self._provider.shutdown()


@dataclass
class Step:
    """A span being recorded (or not): ``headers`` carry its context to the calls made in it."""

    headers: dict[str, str]
    span: trace.Span | None = None
    context: Context | None = field(default=None, repr=False)

    def set(self, key: str, value: str | int | float) -> None:
        if self.span is not None:
            self.span.set_attribute(key, value)


@dataclass
class RequestTrace:
    """One request's trace context and the agent's spans in it."""

    tracer: trace.Tracer | None
    passed: dict[str, str]
    """the incoming ``traceparent``/``tracestate``: what calls carry when there are no spans"""
    parent: Context | None

    @contextmanager
    def span(
        self,
        name: str,
        *,
        kind: trace.SpanKind = trace.SpanKind.INTERNAL,
        attributes: Mapping[str, str | int | float] | None = None,
        within: Step | None = None,
    ) -> Iterator[Step]:
        """A span child of ``within`` (or of the incoming context), ended on exit, marked
        as an error by an exception; without a tracer, the incoming context passed on."""
        if self.tracer is None:
            yield Step(dict(self.passed))
            return
        parent = within.context if within is not None and within.context else self.parent
        span = self.tracer.start_span(
            name, context=parent, kind=kind, attributes=dict(attributes or {})
        )
        context = trace.set_span_in_context(span, parent)
        headers: dict[str, str] = {}
        _PROPAGATOR.inject(headers, context=context)
        try:
            yield Step(headers, span, context)
        except GeneratorExit:  # the client went away mid-answer: not an error of ours
            raise
        except BaseException as exc:
            span.record_exception(exc)
            span.set_status(trace.StatusCode.ERROR, f"{type(exc).__name__}: {exc}")
            raise
        finally:
            span.end()
