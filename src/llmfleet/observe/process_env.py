"""What a gateway or agent process is told of the spec's ``observability:``, as
environment variables, wherever it runs (the local agent starts it, or a pod
runs it); pure.

The gateway reads ``LLMFLEET_*`` (``gateway.__main__.request_observer``). An agent
gets OpenTelemetry's standard variables (``OTEL_*``: the collector, the protocol
the gateway's exporter speaks, its service name, and the gateway's sample ratio
for requests that come without a trace), so an instrumented agent's spans land
in the trace of the gateway request that reached it; a variable its own ``env:``
sets wins.
"""

from __future__ import annotations

from collections.abc import Mapping

from llmfleet.spec.observability import Observability


def gateway_env(settings: Observability) -> dict[str, str]:
    """The environment that tells a gateway process the spec's tracing and logging."""
    env = {
        "LLMFLEET_REQUEST_LOGS": "1" if settings.request_logs else "0",
        "LLMFLEET_LOG_PROMPTS": "1" if settings.log_prompts else "0",
    }
    if settings.otlp_endpoint:
        env["LLMFLEET_OTLP_ENDPOINT"] = settings.otlp_endpoint
        env["LLMFLEET_TRACE_SAMPLE_RATIO"] = str(settings.trace_sample_ratio)
    return env


def agent_tracing_env(
    name: str, own_env: Mapping[str, str], settings: Observability | None
) -> dict[str, str]:
    """OpenTelemetry's variables for the spec's collector, those ``own_env`` leaves unset."""
    if settings is None or not settings.otlp_endpoint:
        return {}
    standard = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": settings.otlp_endpoint,
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",  # the gateway's exporter speaks it
        "OTEL_SERVICE_NAME": name,
        "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
        "OTEL_TRACES_SAMPLER_ARG": str(settings.trace_sample_ratio),
    }
    return {variable: value for variable, value in standard.items() if variable not in own_env}
