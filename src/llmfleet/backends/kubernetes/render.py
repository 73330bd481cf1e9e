"""A resolved environment -> the Kubernetes objects that run it; pure.

``render_environment`` is the one entry point: plan diffs its objects against
the cluster, ``llmfleet render kubernetes`` writes them for a GitOps tool.
Objects come in the order they can be applied in: identities and config first,
then workloads, then what selects them. Engine key Secrets are not rendered:
a key is made at apply and never written into a manifest (for GitOps, create
them once with ``kubectl create secret``; ``engine_key_secrets`` names them).
Nor are agents' Secrets (their scoped key, ``agent_secrets``): apply makes them.
"""

from __future__ import annotations

from typing import Any

from llmfleet.backends.kubernetes.agents import (
    KEY_VARIABLE,
    agent_deployment,
    agent_egress_policy,
    agent_network_policy,
    agent_secret,
    secret_variables,
)
from llmfleet.backends.kubernetes.context import RenderContext
from llmfleet.backends.kubernetes.gateway import gateway_objects
from llmfleet.backends.kubernetes.labels import AGENT, ENGINE
from llmfleet.backends.kubernetes.names import engine_key_secret, engine_name
from llmfleet.backends.kubernetes.optional import optional_objects
from llmfleet.backends.kubernetes.services import (
    disruption_budget,
    engine_network_policy,
    headless_service,
)
from llmfleet.backends.kubernetes.workloads import engine_deployment
from llmfleet.engines.registry import get_adapter
from llmfleet.spec.model import ResolvedEnvironment

Manifest = dict[str, Any]


def render_environment(ctx: RenderContext) -> list[Manifest]:
    """Every object of ``ctx.environment``, in apply order; deterministic."""
    services = ctx.environment.services
    adapters = {name: get_adapter(service.engine.kind) for name, service in services.items()}
    engines: list[Manifest] = []
    ports: dict[str, int] = {}
    for name in sorted(services):
        service = services[name]
        if service.agent is not None:
            deployment, component = agent_deployment(ctx, name, service), AGENT
        else:
            deployment = engine_deployment(ctx, name, service, adapters[name])
            component = ENGINE
        port = deployment["spec"]["template"]["spec"]["containers"][0]["ports"][0]
        ports[name] = port["containerPort"]
        engines += [deployment, headless_service(ctx, name, ports[name], component=component)]
        if service.replicas >= 2:
            selector = ctx.owner.selector(component, name)
            engines.append(
                disruption_budget(
                    ctx, name=engine_name(name), component=component, selector=selector,
                    service=name,
                )
            )  # fmt: skip
    objects = gateway_objects(ctx, ports)
    objects += engines
    engine_ports = {n: p for n, p in ports.items() if services[n].agent is None}
    if engine_ports:
        objects.append(engine_network_policy(ctx, list(engine_ports.values())))
    if len(engine_ports) < len(ports):
        objects.append(agent_network_policy(ctx))
    for name in sorted(services):
        agent = services[name].agent
        if agent is not None and agent.egress is not None:
            objects.append(agent_egress_policy(ctx, name, agent))
    return objects + optional_objects(ctx, engine_ports)


def engine_key_secrets(ctx: RenderContext) -> list[str]:
    """The Secrets (key ``api-key``) engines and the gateway read, one per model service
    (agents want none)."""
    return [engine_key_secret(name) for name in keyed_services(ctx.environment)]


def keyed_services(environment: ResolvedEnvironment) -> list[str]:
    """The services whose engines want an API key from the gateway: all but agents."""
    return sorted(n for n, s in environment.services.items() if s.agent is None)


def agent_secrets(ctx: RenderContext) -> list[str]:
    """The Secrets apply makes for agents (their scoped key and secrets), one per agent."""
    return [
        agent_secret(name, service.agent)
        for name, service in sorted(ctx.environment.services.items())
        if service.agent is not None
    ]


def agent_secret_hints(ctx: RenderContext) -> list[str]:
    """How to make each agent's Secret by hand (GitOps: no apply makes them), in words."""
    hints = []
    for name, service in sorted(ctx.environment.services.items()):
        if service.agent is None:
            continue
        secret = agent_secret(name, service.agent)
        scope = " ".join(f"-s {model}" for model in service.agent.models)
        values = " ".join(
            f"--from-literal={v}=${v}" for v in secret_variables(service.agent) if v != KEY_VARIABLE
        )
        hints.append(
            f"agent {name} reads Secret {secret} (not rendered): make its key with "
            f"`llmfleet keys create {name} {scope}` against the state the gateway reads, then "
            f"kubectl create secret generic {secret} -n {ctx.namespace} "
            f"--from-literal={KEY_VARIABLE}=THE_KEY {values}".rstrip()
        )
    return hints
