"""``agents:`` in the spec: resolved into services of engine kind agent, their
references checked where they were written."""

from __future__ import annotations

from textwrap import dedent

from llmfleet.spec import fleet_json_schema, load_spec_text
from llmfleet.spec.agents import agent_key_name, agent_of_key
from llmfleet.spec.model import EngineKind, ServiceSpec
from tests.spec.conftest import problems_of

SPEC = """\
    services:
      chat:
        model: sim:tiny
        engine: {kind: sim, version: "1.2.0"}
    indexes:
      docs: {embedding: chat, dimension: 384}
    agents:
      docs-assistant:
        entrypoint: docs_agent.app:app
        models: [chat]
        indexes: [docs]
        env: {TONE: short}
        secrets: [SEARCH_TOKEN]
        replicas: 2
        health_path: /healthz
"""


def test_an_agent_is_a_service_of_every_environment_with_its_own_index_location() -> None:
    fleet = load_spec_text(dedent(SPEC)).resolved
    for name in ("production", "staging"):
        service = fleet.environment(name).services["docs-assistant"]
        assert service.engine.kind is EngineKind.AGENT and service.replicas == 2
        assert service.agent is not None and service.agent.models == ("chat",)
        assert service.agent.index_uris == {"docs": f".llmfleet/indexes/{name}/docs"}
        assert not service.retries.resume_streams  # an agent cannot continue a partial answer
    assert fleet.environment("production").services["chat"].agent is None


def test_a_model_service_dumps_and_hashes_as_before_agents_existed() -> None:
    """No `agent` key in a model service's dump: its runtime hash, the gateway's config
    and rendered manifests are unchanged for fleets without agents."""
    chat = load_spec_text(dedent(SPEC)).resolved.environment("production").services["chat"]
    assert "agent" not in chat.model_dump(mode="json")
    assert chat.runtime_hash() == ServiceSpec.model_validate(chat.model_dump()).runtime_hash()


def test_references_to_nothing_are_reported_at_their_line() -> None:
    text = SPEC.replace("models: [chat]", "models: [chta, docs-assistant]").replace(
        "indexes: [docs]", "indexes: [doc]"
    )
    assert problems_of(text) == [
        "fleet.yaml:10:14: agents.docs-assistant.models[0]: unknown service 'chta'; "
        "did you mean 'chat'?",
        "fleet.yaml:10:20: agents.docs-assistant.models[1]: an agent cannot call itself",
        "fleet.yaml:11:15: agents.docs-assistant.indexes[0]: unknown index 'doc'; "
        "did you mean 'docs'?",
    ]


def test_an_agent_needs_a_name_of_its_own() -> None:
    assert problems_of(SPEC.replace("  docs-assistant:", "  chat:")) == [
        "fleet.yaml:8:3: agents.chat: 'chat' is already a service; an agent needs a name of "
        "its own (clients ask the gateway for either by name)"
    ]


def test_an_agent_is_one_program() -> None:
    both = "entrypoint: docs_agent.app:app\n        command: [x]"
    assert problems_of(SPEC.replace("entrypoint: docs_agent.app:app", both)) == [
        "fleet.yaml:8:3: agents.docs-assistant: give exactly one of entrypoint "
        "(package.module:app) or command"
    ]


def test_variables_llmfleet_sets_are_refused_and_secrets_are_names() -> None:
    problems = problems_of(
        SPEC.replace("{TONE: short}", "{OPENAI_BASE_URL: x}").replace(
            "[SEARCH_TOKEN]", '["token=abc"]'
        )
    )
    assert any("OPENAI_BASE_URL is set by llmfleet for every agent" in p for p in problems)
    assert any("'token=abc' is not an environment variable name" in p for p in problems)


def test_a_service_cannot_name_the_agent_engine_itself() -> None:
    problems = problems_of(SPEC.replace("kind: sim,", "kind: agent,"))
    assert any("engine kind agent is for agents: declare them under agents:" in p for p in problems)


def test_the_schema_has_agents_and_no_agent_field_on_services() -> None:
    schema = fleet_json_schema()
    assert "agents" in schema["properties"]
    assert "agent" not in str(schema["$defs"].get("ServiceSpec", {}).get("properties", {}))


def test_an_agent_on_kubernetes_without_an_image_or_state_secret_is_refused_with_the_fix() -> None:
    text = SPEC + "    environments:\n      production:\n        backend: {kind: kubernetes}\n"
    assert problems_of(text) == [
        "fleet.yaml:8:3: agents.docs-assistant: environment 'production' runs on Kubernetes, "
        "where an agent runs in a container: give image: (any image serving HTTP for command:, "
        "or one built FROM llmfleet's image with your package installed for entrypoint:)",
        "fleet.yaml:11:15: agents.docs-assistant.indexes[0]: environment 'production' runs on "
        "Kubernetes: index 'docs' is a folder of this machine (.llmfleet/indexes/production/docs);"
        " a pod reads an index from s3:// (lancedb uri) or pgvector",
        "fleet.yaml:18:5: environments.production.backend: environment 'production' runs agents, "
        "whose API keys its gateway checks in the state store: give backend.state_secret, the "
        "Secret whose key `url` holds the state URL (the same database this machine's state: "
        "names)",
    ]


def test_an_agent_with_an_image_and_an_s3_index_is_accepted_on_kubernetes() -> None:
    text = (
        SPEC.replace("dimension: 384}", "dimension: 384, uri: 's3://docs/{environment}'}")
        .replace("health_path: /healthz", "health_path: /healthz\n        image: ex/docs:1")
        + "    environments:\n      production:\n"
        "        backend: {kind: kubernetes, state_secret: llmfleet-state}\n"
    )
    agent = load_spec_text(dedent(text)).resolved.environment("production").services[
        "docs-assistant"
    ].agent
    assert agent is not None and agent.image == "ex/docs:1"
    assert agent.index_uris == {"docs": "s3://docs/production"}


def test_an_agent_key_name_says_its_agent_and_no_other_key_does() -> None:
    name = agent_key_name("prod-eu", "prod-eu-docs-assistant-1-0a1b2c")
    assert agent_of_key(name) == "docs-assistant"
    assert agent_of_key("ci deploy key") is None
    assert agent_of_key("agent no-slash") is None


def test_an_agent_s_resources_are_its_service_s_and_hold_no_gpu() -> None:
    """What one agent replica needs: requested on a cluster and priced by `costs`, as a
    service's; an agent without it is a small program (a quarter CPU, 512Mi), not the
    1 CPU and 1Gi of a model service it was priced at before it had the field."""
    fleet = load_spec_text(dedent(SPEC)).resolved
    default = fleet.environment("production").services["docs-assistant"].resources
    assert (default.cpus, default.memory, default.gpus) == (0.25, "512Mi", 0)
    sized = SPEC.replace("replicas: 2", "replicas: 2\n        resources: {cpus: 2, memory: 4Gi}")
    services = load_spec_text(dedent(sized)).resolved.environment("production").services
    resources = services["docs-assistant"].resources
    assert (resources.cpus, resources.memory) == (2, "4Gi")
    gpu = SPEC.replace("replicas: 2", "replicas: 2\n        resources: {gpus: 1}")
    assert problems_of(gpu) == [
        "fleet.yaml:15:17: agents.docs-assistant.resources.gpus: unknown field 'gpus'; "
        "did you mean 'cpus'?"
    ]


def test_an_agent_s_egress_is_cidrs_with_ports_each_checked_where_written() -> None:
    allowed = SPEC.replace(
        "replicas: 2",
        "replicas: 2\n        egress: [{cidr: 10.20.0.0/16, ports: [5432]}, {cidr: 'fd00::/8'}]",
    )
    agent = load_spec_text(dedent(allowed)).resolved.environment("production").services[
        "docs-assistant"
    ].agent
    assert agent is not None and agent.egress is not None
    rules = [(r.cidr, r.ports) for r in agent.egress]
    assert rules == [("10.20.0.0/16", (5432,)), ("fd00::/8", ())]
    unset = load_spec_text(dedent(SPEC)).resolved.environment("production").services
    assert unset["docs-assistant"].agent.egress is None  # type: ignore[union-attr]
    problems = problems_of(
        SPEC.replace(
            "replicas: 2",
            "replicas: 2\n        egress: [{cidr: 10.20.0.1/16}, {cidr: nowhere}, "
            "{cidr: 10.0.0.0/8, ports: [0]}]",
        )
    )
    assert len(problems) == 3, problems
    assert "agents.docs-assistant.egress[0].cidr: 10.20.0.1/16 has host bits set" in problems[0]
    assert "agents.docs-assistant.egress[1].cidr: 'nowhere' is not an IP network" in problems[1]
    assert "agents.docs-assistant.egress[2].ports[0]" in problems[2]
    assert all(p.startswith("fleet.yaml:15:") for p in problems), problems


def test_egress_on_an_environment_that_cannot_enforce_it_is_a_warning_at_its_line() -> None:
    """Only a cluster's NetworkPolicy enforces it: on this machine's backend the agent
    reaches anything, and a spec that says otherwise is told so, not silently trusted."""
    text = SPEC.replace("replicas: 2", "replicas: 2\n        egress: [{cidr: 10.20.0.0/16}]")
    loaded = load_spec_text(dedent(text), filename="fleet.yaml")
    rendered = [w.render() for w in loaded.warnings]
    assert rendered == [
        "fleet.yaml:15:5: agents.docs-assistant.egress: not enforced on the local backend "
        "(environments production, staging): there the agent reaches any address; only a "
        "kubernetes environment applies it"
    ], rendered
    assert load_spec_text(dedent(SPEC), filename="fleet.yaml").warnings == ()
