"""Objects of APIs a cluster may not serve: rendered only when the render is told
the API is there (API discovery at plan; ``--api`` for ``llmfleet render``); pure."""

from __future__ import annotations

from typing import Any

from llmfleet.backends.kubernetes.context import (
    INFERENCE_POOL_API,
    POD_MONITOR_API,
    RenderContext,
)
from llmfleet.backends.kubernetes.labels import ENGINE, GATEWAY
from llmfleet.backends.kubernetes.names import GATEWAY as GATEWAY_NAME
from llmfleet.backends.kubernetes.names import engine_name

EPP_PORT = 9002
"""The port an endpoint picker serves on by the Gateway API inference extension's convention."""


def optional_objects(ctx: RenderContext, ports: dict[str, int]) -> list[dict[str, Any]]:
    objects: list[dict[str, Any]] = []
    if POD_MONITOR_API in ctx.apis:
        objects.append(_pod_monitor(ctx))
    if INFERENCE_POOL_API in ctx.apis:
        objects += [_inference_pool(ctx, name, ports[name]) for name in sorted(ports)]
    return objects


def _pod_monitor(ctx: RenderContext) -> dict[str, Any]:
    """Prometheus scrapes the gateways, whose /metrics carry the engines' series,
    normalised; the engines themselves stay unreachable to anything but the gateway."""
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PodMonitor",
        "metadata": ctx.owner.metadata(GATEWAY_NAME, ctx.namespace, GATEWAY),
        "spec": {
            "selector": {"matchLabels": ctx.owner.selector(GATEWAY)},
            "podMetricsEndpoints": [{"port": "http", "path": "/metrics", "interval": "15s"}],
        },
    }


def _inference_pool(ctx: RenderContext, name: str, port: int) -> dict[str, Any]:
    """The service's pods as a pool for a Gateway API inference implementation; its
    endpoint picker (``NAME-epp``) is the cluster's to run."""
    return {
        "apiVersion": "inference.networking.k8s.io/v1",
        "kind": "InferencePool",
        "metadata": ctx.owner.metadata(engine_name(name), ctx.namespace, ENGINE, name),
        "spec": {
            "selector": {"matchLabels": ctx.owner.selector(ENGINE, name)},
            "targetPorts": [{"number": port}],
            "endpointPickerRef": {
                "name": f"{engine_name(name)[:59].rstrip('-')}-epp",
                "port": {"number": EPP_PORT},
            },
        },
    }
