"""Apply tells an agent the spec's trace collector in OpenTelemetry's standard variables
(its own ``env:`` wins), and the docs assistant reads them as the SDK does. A real SQLite
state store and the docs assistant's own code; no spans are sent here."""

from __future__ import annotations

from pathlib import Path
from textwrap import dedent

from llmfleet.apply.agents import agent_environment
from llmfleet.examples.docs_tracing import Tracer, TraceSettings
from llmfleet.spec import load_spec_text
from llmfleet.spec.model import GatewaySpec
from llmfleet.spec.observability import Observability
from llmfleet.state.store import StateStore

SPEC = """\
    services:
      chat: {model: "sim:tiny", engine: {kind: sim, version: "1.2.0"}}
    agents:
      helper:
        entrypoint: app:app
        models: [chat]
        env: {OTEL_SERVICE_NAME: helper-v2}
"""


def _env(tmp_path: Path, observability: Observability, replica: str) -> dict[str, str]:
    service = load_spec_text(dedent(SPEC)).resolved.environment("production").services["helper"]
    with StateStore.open("sqlite:///state.db", base_dir=tmp_path) as store:
        for_replica = agent_environment(
            "helper",
            service,
            environment="production",
            gateway=GatewaySpec(port=8080),
            store=store,
            spec_dir=tmp_path,
            user_env={},
            observability=observability,
        )
        assert for_replica is not None
        return for_replica(f"production-helper-0-{replica}")


def test_the_collector_is_handed_on_and_the_agents_own_env_wins(tmp_path: Path) -> None:
    traced = Observability(otlp_endpoint="http://127.0.0.1:4318", trace_sample_ratio=0.25)
    env = _env(tmp_path, traced, "abc123")
    assert {k: v for k, v in env.items() if k.startswith("OTEL_")} == {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
        "OTEL_TRACES_SAMPLER_ARG": "0.25",
    }  # OTEL_SERVICE_NAME stays the spec's helper-v2 (the launch env, under these)
    assert not [k for k in _env(tmp_path, Observability(), "def456") if k.startswith("OTEL_")]


def test_the_docs_assistant_reads_the_standard_variables() -> None:
    base = {"LLMFLEET_AGENT": "docs-assistant"}
    assert TraceSettings.from_env(base) == TraceSettings(None, "docs-assistant")
    generic = {**base, "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318/", "OTEL_SERVICE_NAME": "d"}
    assert TraceSettings.from_env(generic) == TraceSettings("http://c:4318/v1/traces", "d")
    signal = {**generic, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://t/x"}
    assert TraceSettings.from_env(signal).endpoint == "http://t/x"  # the signal's own wins
    assert TraceSettings.from_env({**generic, "OTEL_SDK_DISABLED": "true"}).endpoint is None
    assert TraceSettings.from_env({**generic, "OTEL_TRACES_EXPORTER": "none"}).endpoint is None
    ratio = {**generic, "OTEL_TRACES_SAMPLER_ARG": "0.1"}
    assert TraceSettings.from_env(ratio).sample_ratio == 0.1
    assert TraceSettings.from_env({**generic, "OTEL_TRACES_SAMPLER_ARG": "x"}).sample_ratio == 1


def test_without_a_collector_the_incoming_context_is_passed_on_as_it_came() -> None:
    """No spans of its own: each call carries the client's traceparent and tracestate."""
    tracer = Tracer(TraceSettings(None, "docs-assistant"))
    parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    trace = tracer.request({"traceparent": parent, "tracestate": "a=1", "authorization": "k"})
    with trace.span("retrieve") as step:
        assert step.headers == {"traceparent": parent, "tracestate": "a=1"}
        step.set("ignored", 1)
    with tracer.request({}).span("chat") as bare:
        assert bare.headers == {}
    tracer.shutdown()
