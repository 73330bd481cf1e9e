"""Agents (``agents:``) on a cluster environment: what is rendered for them (golden file,
Kubernetes' own schemas in strict mode, what must hold of it), and the keys apply makes."""

from __future__ import annotations

import json
import os
from typing import Any

import kubernetes_validate
import pytest

from llmfleet.backends.kubernetes.agents import AGENT_PORT, agent_secret
from llmfleet.backends.kubernetes.compose import render_compose
from llmfleet.backends.kubernetes.context import OPTIONAL_APIS, RenderContext
from llmfleet.backends.kubernetes.documents import to_yaml_stream
from llmfleet.backends.kubernetes.render import (
    agent_secret_hints,
    agent_secrets,
    render_environment,
)
from llmfleet.errors import BackendError
from llmfleet.spec.loading import load_spec, load_spec_text
from tests.backends.kubernetes.cases import HERE

SPEC = HERE / "specs" / "agents.yaml"
GOLDEN = HERE / "golden" / "agents-production.yaml"
OLDEST, NEWEST = "1.29.0", kubernetes_validate.latest_version()
SECRET_VARIABLES = {"OPENAI_API_KEY", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "NOTES_DB_URL"}


def context(text: str | None = None) -> RenderContext:
    spec = load_spec(SPEC) if text is None else load_spec_text(text)
    resolved = spec.resolved
    return RenderContext(
        fleet=resolved.name, environment=resolved.environment("production"), apis=OPTIONAL_APIS
    )


def rendered(text: str | None = None) -> list[dict[str, Any]]:
    return render_environment(context(text))


def one(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    (found,) = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    return found


def pod(deployment: dict[str, Any]) -> dict[str, Any]:
    return deployment["spec"]["template"]["spec"]  # type: ignore[no-any-return]


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    return {v["name"]: v.get("value", v.get("valueFrom")) for v in container["env"]}


def test_the_agents_manifests_match_the_reviewed_golden_file() -> None:
    text = to_yaml_stream(rendered())
    if os.environ.get("LLMFLEET_UPDATE_GOLDEN") == "1":
        GOLDEN.write_text(text)
    assert text == GOLDEN.read_text(), "agents-production.yaml differs; review, then update"


@pytest.mark.parametrize("version", [OLDEST, NEWEST])
def test_every_agent_object_is_valid_in_strict_mode(version: str) -> None:
    objects = [o for o in rendered() if o["kind"] not in ("PodMonitor", "InferencePool")]
    agents = [o for o in objects if o["metadata"]["labels"]["app.kubernetes.io/component"]
              == "agent"]  # fmt: skip
    kinds = sorted(o["kind"] for o in agents)
    assert kinds == ["Deployment", "Deployment", "NetworkPolicy", "NetworkPolicy",
                     "PodDisruptionBudget", "Service", "Service"]  # fmt: skip
    for manifest in objects:
        kubernetes_validate.validate(manifest, version, strict=True)


def test_an_agent_runs_its_image_like_a_replica_locked_down_and_probed_on_its_health_path() -> None:
    objects = rendered()
    deployment = one(objects, "Deployment", "docs-assistant")
    spec = pod(deployment)
    (container,) = spec["containers"]
    assert container["image"] == "registry.example.com/docs-assistant:1.4.0"
    assert container["command"][:4] == ["python", "-m", "llmfleet.engines.agent_serve", "--app"]
    assert container["command"][-4:] == ["--host", "0.0.0.0", "--port", str(AGENT_PORT)]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["selector"]["matchLabels"].items() <= (
        deployment["spec"]["template"]["metadata"]["labels"].items()
    )
    assert spec["automountServiceAccountToken"] is False
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert spec["terminationGracePeriodSeconds"] > 15 + 600  # preStop drain + longest request
    triage = pod(one(objects, "Deployment", "triage"))["containers"][0]
    assert triage["command"] == ["triage-server", "--listen", f"0.0.0.0:{AGENT_PORT}"]
    budgets = {o["metadata"]["name"] for o in objects if o["kind"] == "PodDisruptionBudget"}
    assert "docs-assistant" in budgets and "triage" not in budgets  # 2 replicas against 1


def test_an_agent_is_told_the_gateway_service_its_indexes_and_gets_secrets_by_reference() -> None:
    objects = rendered()
    (container,) = pod(one(objects, "Deployment", "docs-assistant"))["containers"]
    env = env_of(container)
    assert env["OPENAI_BASE_URL"] == "http://llmfleet-gateway.rag-prod.svc:8080/v1"
    assert env["LLMFLEET_INDEX_DOCS"] == "s3://rag-indexes/production/docs"
    assert (
        env["LLMFLEET_INDEX_NOTES"] == "pgvector://llmfleet_notes_production?url_env=NOTES_DB_URL"
    )
    assert env["TONE"] == "short" and env["LLMFLEET_AGENT"] == "docs-assistant"
    (secret,) = [s for s in agent_secrets(context()) if s.startswith("docs-assistant-")]
    for variable in SECRET_VARIABLES:
        assert env[variable] == {"secretKeyRef": {"name": secret, "key": variable}}, variable
    assert not [o for o in objects if o["kind"] == "Secret"], "a key is never in a manifest"
    assert "lf-" not in to_yaml_stream(objects)


def test_the_gateway_routes_an_agent_by_its_endpoint_slices_and_sends_it_no_engine_key() -> None:
    objects = rendered()
    config = json.loads(one(objects, "ConfigMap", "llmfleet-gateway")["data"]["services.json"])
    agent = config["services"]["docs-assistant"]
    assert agent["endpoints"] == {"service": "docs-assistant", "port": AGENT_PORT}
    assert "key_file" not in agent and "key_file" in config["services"]["chat"]
    headless = one(objects, "Service", "docs-assistant")["spec"]
    assert headless["clusterIP"] == "None"
    assert headless["selector"]["app.kubernetes.io/component"] == "agent"
    volumes = pod(one(objects, "Deployment", "llmfleet-gateway"))["volumes"]
    projected = next(v for v in volumes if v["name"] == "engine-keys")["projected"]["sources"]
    assert sorted(s["secret"]["name"] for s in projected) == ["chat-engine-key", "embed-engine-key"]
    pools = {o["metadata"]["name"] for o in objects if o["kind"] == "InferencePool"}
    assert pools == {"chat", "embed"}, "an agent is no inference pool"


def test_only_the_gateway_reaches_an_agent_and_an_agent_reaches_no_engine_directly() -> None:
    objects = rendered()
    agents = one(objects, "NetworkPolicy", "llmfleet-agents")["spec"]
    engines = one(objects, "NetworkPolicy", "llmfleet-engines")["spec"]
    labels = {
        d["metadata"]["name"]: d["spec"]["template"]["metadata"]["labels"]
        for d in objects
        if d["kind"] == "Deployment"
    }
    (rule,) = agents["ingress"]
    (source,) = rule["from"]
    assert set(source) == {"podSelector"}, "no namespace or IP block may be let in"
    assert source["podSelector"]["matchLabels"].items() <= labels["llmfleet-gateway"].items()
    assert rule["ports"] == [{"protocol": "TCP", "port": AGENT_PORT}]
    for name in ("docs-assistant", "triage"):
        assert agents["podSelector"]["matchLabels"].items() <= labels[name].items()
        assert not engines["podSelector"]["matchLabels"].items() <= labels[name].items()
        # the engines let in the gateway's pods only, and an agent's pods are not those
        (engine_rule,) = engines["ingress"]
        assert not engine_rule["from"][0]["podSelector"]["matchLabels"].items() <= (
            labels[name].items()
        )
    # the gateway itself is under no ingress policy: the agent reaches it (egress is open)
    gateway = labels["llmfleet-gateway"].items()
    for policy in (agents, engines):
        assert not policy["podSelector"]["matchLabels"].items() <= gateway
        assert policy["policyTypes"] == ["Ingress"]


def test_a_replaced_agent_gets_a_new_secret_and_its_pods_roll_a_scaled_one_does_not() -> None:
    base = SPEC.read_text()
    before = {n: agent_secret(n, s.agent) for n, s in _agents(base).items()}
    new_image = {n: agent_secret(n, s.agent)
                 for n, s in _agents(base.replace("docs-assistant:1.4.0", "docs-assistant:1.5.0")
                                     ).items()}  # fmt: skip
    assert new_image["docs-assistant"] != before["docs-assistant"]
    assert new_image["triage"] == before["triage"]
    scaled = {n: agent_secret(n, s.agent) for n, s in _agents(base.replace(
        "replicas: 2", "replicas: 3")).items()}  # fmt: skip
    assert scaled == before, "scaling keeps the key"


def _agents(text: str) -> dict[str, Any]:
    services = context(text).environment.services
    return {n: s for n, s in services.items() if s.agent is not None}


def test_no_agent_objects_for_a_fleet_without_agents() -> None:
    from tests.backends.kubernetes.cases import render

    objects = render("init", "production")
    assert "llmfleet-agents" not in {o["metadata"]["name"] for o in objects}


def test_render_says_how_to_make_each_agent_s_secret_by_hand_for_gitops() -> None:
    ctx = context()
    hints = dict(zip(["docs-assistant", "triage"], agent_secret_hints(ctx), strict=True))
    (secret,) = [s for s in agent_secrets(ctx) if s.startswith("docs-assistant-")]
    assert f"kubectl create secret generic {secret} -n rag-prod" in hints["docs-assistant"]
    assert "llmfleet keys create docs-assistant -s chat -s embed" in hints["docs-assistant"]
    assert "--from-literal=NOTES_DB_URL=$NOTES_DB_URL" in hints["docs-assistant"]
    assert "--from-literal=OPENAI_API_KEY=THE_KEY" in hints["triage"]


def test_a_compose_file_refuses_agents_with_the_fix() -> None:
    with pytest.raises(BackendError, match=r"agents\.docs-assistant: a compose file does not run"):
        render_compose(context())


def test_the_spec_s_tracing_and_request_logs_reach_the_cluster_gateway_and_agents() -> None:
    """As locally: the gateway is told the collector, the sampling and the log settings,
    each agent OpenTelemetry's standard variables (its own ``env:`` wins); a cluster
    gateway and agent were told nothing, and no trace left the cluster."""
    text = SPEC.read_text() + (
        "observability: {otlp_endpoint: 'http://collector.obs.svc:4318', "
        "trace_sample_ratio: 0.25, log_prompts: false}\n"
    )
    objects = rendered(text)
    (gateway,) = pod(one(objects, "Deployment", "llmfleet-gateway"))["containers"]
    told = env_of(gateway)
    assert told["LLMFLEET_OTLP_ENDPOINT"] == "http://collector.obs.svc:4318"
    assert told["LLMFLEET_TRACE_SAMPLE_RATIO"] == "0.25"
    assert told["LLMFLEET_REQUEST_LOGS"] == "1" and told["LLMFLEET_LOG_PROMPTS"] == "0"
    (agent,) = pod(one(objects, "Deployment", "docs-assistant"))["containers"]
    env = env_of(agent)
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://collector.obs.svc:4318"
    assert env["OTEL_SERVICE_NAME"] == "docs-assistant"
    assert env["OTEL_TRACES_SAMPLER"] == "parentbased_traceidratio"
    assert env["OTEL_TRACES_SAMPLER_ARG"] == "0.25"
    own = rendered(text.replace("TONE: short", "TONE: short, OTEL_SERVICE_NAME: docs"))
    (agent,) = pod(one(own, "Deployment", "docs-assistant"))["containers"]
    assert env_of(agent)["OTEL_SERVICE_NAME"] == "docs"
    quiet = env_of(pod(one(rendered(), "Deployment", "docs-assistant"))["containers"][0])
    assert not [name for name in quiet if name.startswith("OTEL_")]


def test_an_agent_pod_requests_its_resources_with_memory_as_its_limit() -> None:
    """As an engine's: CPU requested, not limited; memory requested and limited."""
    (container,) = pod(one(rendered(), "Deployment", "triage"))["containers"]
    assert container["resources"] == {
        "requests": {"cpu": "250m", "memory": "512Mi"}, "limits": {"memory": "512Mi"}
    }
    sized = SPEC.read_text().replace(
        "command: [triage-server",
        "resources: {cpus: 1.5, memory: 2Gi}\n    command: [triage-server",
    )
    (container,) = pod(one(rendered(sized), "Deployment", "triage"))["containers"]
    assert container["resources"] == {
        "requests": {"cpu": "1500m", "memory": "2Gi"}, "limits": {"memory": "2Gi"}
    }


def test_an_agent_with_egress_reaches_its_gateway_dns_and_its_networks_only() -> None:
    """A NetworkPolicy of its own: egress to this environment's gateway pods on the
    gateway's port, to the cluster's DNS, and to each network of its ``egress:``; an
    agent without ``egress:`` gets none (the cluster's default applies)."""
    objects = rendered()
    policies = {o["metadata"]["name"]: o for o in objects if o["kind"] == "NetworkPolicy"}
    assert "docs-assistant-egress" not in policies
    policy = policies["triage-egress"]["spec"]
    triage = one(objects, "Deployment", "triage")
    assert policy["podSelector"] == triage["spec"]["selector"]
    assert policy["policyTypes"] == ["Egress"] and "ingress" not in policy
    gateway, dns, ticketing = policy["egress"]
    gateway_deployment = one(objects, "Deployment", "llmfleet-gateway")
    assert gateway["to"] == [{"podSelector": gateway_deployment["spec"]["selector"]}]
    (port,) = pod(gateway_deployment)["containers"][0]["ports"]
    assert gateway["ports"] == [{"protocol": "TCP", "port": port["containerPort"]}]
    assert dns["to"] == [{"namespaceSelector": {},
                          "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}]  # fmt: skip
    assert {(p["protocol"], p["port"]) for p in dns["ports"]} == {("UDP", 53), ("TCP", 53)}
    assert ticketing == {"to": [{"ipBlock": {"cidr": "10.40.0.0/16"}}],
                         "ports": [{"protocol": "TCP", "port": 443}]}  # fmt: skip
