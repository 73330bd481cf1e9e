"""How engine pods are found and kept: headless Services, PDBs, the NetworkPolicy; pure."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from llmfleet.backends.kubernetes.context import RenderContext
from llmfleet.backends.kubernetes.labels import COMPONENT, ENGINE, FLEET, GATEWAY
from llmfleet.backends.kubernetes.labels import ENVIRONMENT as ENV_LABEL
from llmfleet.backends.kubernetes.names import ENGINE_NETWORK_POLICY, engine_name
from llmfleet.backends.kubernetes.workloads import PORT_NAME


def headless_service(
    ctx: RenderContext, name: str, port: int, *, component: str = ENGINE
) -> dict[str, Any]:
    """No cluster IP: the gateway balances itself, over the EndpointSlices of this Service
    (ready endpoints are routed, terminating ones drained). An agent's pods are found
    the same way (``component`` agent)."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": ctx.owner.metadata(engine_name(name), ctx.namespace, component, name),
        "spec": {
            "clusterIP": "None",
            "selector": ctx.owner.selector(component, name),
            "ports": [{"name": PORT_NAME, "port": port, "targetPort": PORT_NAME}],
            "publishNotReadyAddresses": False,
        },
    }


def disruption_budget(
    ctx: RenderContext,
    *,
    name: str,
    component: str,
    selector: Mapping[str, str],
    service: str | None,
) -> dict[str, Any]:
    """One pod down at a time on a node drain; rendered only for 2+ replicas (with one,
    a budget would block every drain of its node)."""
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": ctx.owner.metadata(name, ctx.namespace, component, service),
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": dict(selector)}},
    }


def engine_network_policy(ctx: RenderContext, ports: list[int]) -> dict[str, Any]:
    """Engines are leaf services: only this environment's gateway pods reach their ports,
    and nothing reaches any other port. Egress stays open (the model fetch needs it)."""
    engines = {FLEET: ctx.fleet, ENV_LABEL: ctx.environment.name, COMPONENT: ENGINE}
    gateways = {FLEET: ctx.fleet, ENV_LABEL: ctx.environment.name, COMPONENT: GATEWAY}
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": ctx.owner.metadata(ENGINE_NETWORK_POLICY, ctx.namespace, ENGINE),
        "spec": {
            "podSelector": {"matchLabels": engines},
            "policyTypes": ["Ingress"],
            "ingress": [
                {
                    "from": [{"podSelector": {"matchLabels": gateways}}],
                    "ports": [{"protocol": "TCP", "port": port} for port in sorted(set(ports))],
                }
            ],
        },
    }
