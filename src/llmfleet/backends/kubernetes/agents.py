"""An agent (``agents:``) in the cluster: a Deployment of its image, reached like a service; pure.

An agent's code is the user's, so its container is the spec's ``image:`` (the
spec refuses an agent on a cluster environment without one). ``entrypoint:``
runs in it as ``python -m llmfleet.engines.agent_serve`` (the image is built
FROM llmfleet's, with the agent's package installed), ``command:`` as written,
with ``{port}`` the container's port; either listens on every address of the pod.

The rest is what an engine gets: the spec's replicas and rollout, a startup,
readiness and liveness probe on its ``health_path``, a preStop drain and a grace
period covering the longest request, no service-account token, not root, a
headless Service whose EndpointSlices the gateway routes the agent's name to,
and a PodDisruptionBudget from two replicas (``render``).

What it may reach comes in its environment, as locally: ``OPENAI_BASE_URL`` is
the gateway Service inside the cluster, ``OPENAI_API_KEY`` its scoped key, the
spec's ``secrets:`` and a pgvector index's URL come from the agent's Secret
(``agent_secret``, made by apply: never in a manifest or the state), an index's
location (``s3://``, or ``pgvector://TABLE?url_env=VAR``) is written as is.
The Secret's name carries a hash of the agent's runtime, so a replaced agent
(a new image, command, models...) gets a new Secret, hence a new key, and its
pods roll to it; the old key is revoked once the new pods are out.

Its NetworkPolicy lets only the gateway reach its port, as for engines; the
agent's own traffic (to the gateway, its indexes, outside tools) is not limited,
and the engines' policy keeps it off every engine: its models are reached only
through the gateway, with its key.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from llmfleet.backends.kubernetes import pods
from llmfleet.backends.kubernetes.context import RenderContext
from llmfleet.backends.kubernetes.labels import AGENT, COMPONENT, FLEET, GATEWAY
from llmfleet.backends.kubernetes.labels import ENVIRONMENT as ENV_LABEL
from llmfleet.backends.kubernetes.names import AGENT_NETWORK_POLICY, dns_label, engine_name
from llmfleet.backends.kubernetes.reaching import cluster_address
from llmfleet.backends.kubernetes.workloads import (
    DRAIN_S,
    PORT_NAME,
    grace_period_s,
    progress_deadline_s,
)
from llmfleet.engines.agent import agent_of
from llmfleet.engines.base import Probe
from llmfleet.observe.process_env import agent_tracing_env
from llmfleet.spec.agents import PORT_PLACEHOLDER, AgentRuntime, index_variable
from llmfleet.spec.model import ServiceSpec
from llmfleet.spec.rag import pgvector_url_env

AGENT_PORT = 8080
KEY_VARIABLE = "OPENAI_API_KEY"
KEY_NAME_ANNOTATION = "llmfleet.io/key-name"
"""On an agent's Secret: the name of its key in the state store (never the key)."""
SERVE_MODULE = "llmfleet.engines.agent_serve"


def runtime_digest(agent: AgentRuntime) -> str:
    """Eight hex digits over what the agent runs as (its image, program, models, env...):
    a change replaces its pods, and with them its key."""
    body = json.dumps(agent.model_dump(mode="json"), sort_keys=True)
    return hashlib.sha256(body.encode()).hexdigest()[:8]


def agent_secret(name: str, agent: AgentRuntime) -> str:
    """The Secret holding the agent's key and secrets, one per runtime (made at apply)."""
    return dns_label(name, "agent", runtime_digest(agent))


def secret_variables(agent: AgentRuntime) -> list[str]:
    """The variables the agent reads from its Secret: its key, its ``secrets:``, and the
    URL variable of each pgvector index it reads."""
    urls = [v for uri in agent.index_uris.values() if (v := pgvector_url_env(uri)) is not None]
    return list(dict.fromkeys([KEY_VARIABLE, *agent.secrets, *urls]))


def agent_deployment(ctx: RenderContext, name: str, service: ServiceSpec) -> dict[str, Any]:
    agent = agent_of(service)
    owner = ctx.owner
    rollout = service.rollout
    pod = {
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": pods.pod_security(),
        "terminationGracePeriodSeconds": grace_period_s(service),
        "topologySpreadConstraints": [{
            "maxSkew": 1, "topologyKey": "kubernetes.io/hostname",
            "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": {"matchLabels": owner.selector(AGENT, name)},
        }],
        "containers": [_container(ctx, name, service, agent)],
        "volumes": [pods.tmp_volume()],
    }  # fmt: skip
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": owner.metadata(engine_name(name), ctx.namespace, AGENT, name),
        "spec": {
            "replicas": service.replicas,
            "selector": {"matchLabels": owner.selector(AGENT, name)},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {
                "maxSurge": rollout.max_surge, "maxUnavailable": rollout.max_unavailable}},
            "progressDeadlineSeconds": progress_deadline_s(service),
            "revisionHistoryLimit": 3,
            "template": {"metadata": {"labels": owner.pod_labels(AGENT, name)}, "spec": pod},
        },
    }  # fmt: skip


def _program(agent: AgentRuntime) -> list[str]:
    if agent.command is None:
        assert agent.entrypoint is not None  # one of the two, checked by the spec
        return [
            "python",
            "-m",
            SERVE_MODULE,
            "--app",
            agent.entrypoint,
            "--host",
            "0.0.0.0",
            "--port",
            str(AGENT_PORT),
        ]  # every address of the pod
    return [part.replace(PORT_PLACEHOLDER, str(AGENT_PORT)) for part in agent.command]


def _container(
    ctx: RenderContext, name: str, service: ServiceSpec, agent: AgentRuntime
) -> dict[str, Any]:
    gateway = cluster_address(ctx.namespace, ctx.environment.gateway.port)
    secret = agent_secret(name, agent)
    secret_env = secret_variables(agent)
    plain = {
        "HOME": "/tmp",  # noqa: S108 - the pod's own emptyDir
        **{k: v for k, v in agent.env.items() if k not in secret_env},
        **{index_variable(index): uri for index, uri in agent.index_uris.items()},
        "OPENAI_BASE_URL": f"{gateway}/v1",
        "LLMFLEET_AGENT": name,
        "LLMFLEET_ENVIRONMENT": ctx.environment.name,
        **agent_tracing_env(name, agent.env, ctx.environment.observability),
    }
    env: list[dict[str, Any]] = [{"name": k, "value": v} for k, v in sorted(plain.items())]
    env += [
        {"name": variable, "valueFrom": {"secretKeyRef": {"name": secret, "key": variable}}}
        for variable in secret_env
    ]
    probe = Probe(agent.health_path)
    return {
        "name": "agent",
        "image": agent.image,
        "command": _program(agent),
        "ports": [{"name": PORT_NAME, "containerPort": AGENT_PORT, "protocol": "TCP"}],
        "env": env,
        "resources": pods.container_resources(service.resources),
        "securityContext": pods.container_security(),
        "startupProbe": pods.startup_probe(probe, PORT_NAME, budget_s=service.rollout.startup_s),
        "readinessProbe": pods.readiness_probe(probe, PORT_NAME),
        "livenessProbe": pods.liveness_probe(probe, PORT_NAME),
        "lifecycle": {"preStop": {"exec": {"command": ["sleep", str(DRAIN_S)]}}},
        "volumeMounts": [pods.tmp_mount()],
    }


def agent_network_policy(ctx: RenderContext) -> dict[str, Any]:
    """Only this environment's gateway pods reach an agent's port."""
    agents = {FLEET: ctx.fleet, ENV_LABEL: ctx.environment.name, COMPONENT: AGENT}
    gateways = {FLEET: ctx.fleet, ENV_LABEL: ctx.environment.name, COMPONENT: GATEWAY}
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": ctx.owner.metadata(AGENT_NETWORK_POLICY, ctx.namespace, AGENT),
        "spec": {
            "podSelector": {"matchLabels": agents},
            "policyTypes": ["Ingress"],
            "ingress": [{
                "from": [{"podSelector": {"matchLabels": gateways}}],
                "ports": [{"protocol": "TCP", "port": AGENT_PORT}],
            }],
        },
    }  # fmt: skip


def agent_egress_policy(ctx: RenderContext, name: str, agent: AgentRuntime) -> dict[str, Any]:
    """What an agent with ``egress:`` may reach: its environment's gateway pods on the
    gateway's port (the Service's traffic arrives there), the cluster's DNS, and each
    listed network; nothing else. An agent without ``egress:`` gets no such policy."""
    gateways = ctx.owner.selector(GATEWAY)
    rules: list[dict[str, Any]] = [
        {"to": [{"podSelector": {"matchLabels": gateways}}],
         "ports": [{"protocol": "TCP", "port": ctx.environment.gateway.port}]},
        {"to": [{"namespaceSelector": {}, "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
         "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]},
    ]  # fmt: skip
    for rule in agent.egress or ():
        allowed: dict[str, Any] = {"to": [{"ipBlock": {"cidr": rule.cidr}}]}
        if rule.ports:
            allowed["ports"] = [{"protocol": "TCP", "port": port} for port in rule.ports]
        rules.append(allowed)
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": ctx.owner.metadata(dns_label(name, "egress"), ctx.namespace, AGENT, name),
        "spec": {
            "podSelector": {"matchLabels": ctx.owner.selector(AGENT, name)},
            "policyTypes": ["Egress"],
            "egress": rules,
        },
    }

