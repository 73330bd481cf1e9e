"""A resolved environment -> the Kubernetes objects that run it; pure.

``render_environment`` is the one entry point: plan diffs its objects against
the cluster, ``llmfleet render kubernetes`` writes them for a GitOps tool.
Objects come in the order they can be applied in: identities and config first,
then workloads, then what selects them. Engine key Secrets are not rendered:
a key is made at apply and never written into a manifest (for GitOps, create
them once with ``kubectl create secret``; ``engine_key_secrets`` names them).
"""

from __future__ import annotations

from typing import Any

from llmfleet.backends.kubernetes.context import RenderContext
from llmfleet.backends.kubernetes.gateway import gateway_objects
from llmfleet.backends.kubernetes.labels import ENGINE
from llmfleet.backends.kubernetes.names import engine_key_secret, engine_name
from llmfleet.backends.kubernetes.optional import optional_objects
from llmfleet.backends.kubernetes.services import (
    disruption_budget,
    engine_network_policy,
    headless_service,
)
from llmfleet.backends.kubernetes.workloads import engine_deployment
from llmfleet.engines.registry import get_adapter

Manifest = dict[str, Any]


def render_environment(ctx: RenderContext) -> list[Manifest]:
    """Every object of ``ctx.environment``, in apply order; deterministic."""
    services = ctx.environment.services
    adapters = {name: get_adapter(service.engine.kind) for name, service in services.items()}
    engines: list[Manifest] = []
    ports: dict[str, int] = {}
    for name in sorted(services):
        service = services[name]
        deployment = engine_deployment(ctx, name, service, adapters[name])
        port = deployment["spec"]["template"]["spec"]["containers"][0]["ports"][0]
        ports[name] = port["containerPort"]
        engines += [deployment, headless_service(ctx, name, ports[name])]
        if service.replicas >= 2:
            selector = ctx.owner.selector(ENGINE, name)
            engines.append(
                disruption_budget(
                    ctx, name=engine_name(name), component=ENGINE, selector=selector, service=name
                )
            )
    objects = gateway_objects(ctx, ports)
    objects += engines
    if ports:
        objects.append(engine_network_policy(ctx, list(ports.values())))
    return objects + optional_objects(ctx, ports)


def engine_key_secrets(ctx: RenderContext) -> list[str]:
    """The Secrets (key ``api-key``) engines and the gateway read, one per service."""
    return [engine_key_secret(name) for name in sorted(ctx.environment.services)]
