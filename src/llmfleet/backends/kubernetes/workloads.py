"""A service as a Deployment of engine pods; pure.

Choices, and why:

- The rollout is the spec's (``rollout.max_surge``/``max_unavailable``): a surge
  needs room for one more pod (a spare GPU), so it is chosen, never assumed.
- A startup probe carries the spec's startup budget, so a liveness probe never
  kills a pod that is still loading a large model; ``progressDeadlineSeconds``
  is above it (plus room for scheduling, the image pull and the model fetch).
- Readiness is the engine's health path (llama-server and vLLM answer 200 only
  once the model is loaded). A kubelet probe cannot POST, so the one-token
  generation that proves a model answers is the gateway's probe, as locally.
- On delete the pod first sleeps ``DRAIN_S`` in preStop, while the gateway sees
  its endpoint terminating and sends it nothing new; the grace period covers the
  drain and then the longest request (``timeouts.total_s``) on SIGTERM.
- The engine's API key comes from a Secret (never the manifest); engines get no
  service-account token, do not run as root, and only the gateway reaches them.
"""

from __future__ import annotations

import math
from typing import Any

from llmfleet.backends.kubernetes import pods
from llmfleet.backends.kubernetes.context import MODELS_MOUNT, RenderContext
from llmfleet.backends.kubernetes.gpus import gpu_scheduling
from llmfleet.backends.kubernetes.labels import ENGINE
from llmfleet.backends.kubernetes.names import (
    KEY_FIELD,
    engine_key_secret,
    engine_name,
    model_link,
)
from llmfleet.engines.base import ContainerSpec, EngineAdapter
from llmfleet.spec.model import ServiceSpec

DRAIN_S = 15
"""preStop: time for every gateway to see the endpoint terminating (EndpointSlice watch)."""
SHUTDOWN_MARGIN_S = 10
PROGRESS_MARGIN_S = 300
"""Above the startup budget: scheduling, the image pull and the model fetch."""
MODELS_VOLUME = "models"
PORT_NAME = "http"
FETCH_MODULE = "llmfleet.backends.kubernetes.fetch"


def grace_period_s(service: ServiceSpec) -> int:
    return DRAIN_S + math.ceil(service.timeouts.total_s) + SHUTDOWN_MARGIN_S


def progress_deadline_s(service: ServiceSpec) -> int:
    return pods.startup_window_s(service.rollout.startup_s) + PROGRESS_MARGIN_S


def model_uri(name: str, service: ServiceSpec) -> str:
    """What the engine is told to load: the fetched file in the volume, or a sim name."""
    if service.model.scheme == "sim":
        return service.model.source
    return f"{MODELS_MOUNT}/{model_link(name, service.model.source)}"


def engine_deployment(
    ctx: RenderContext, name: str, service: ServiceSpec, adapter: EngineAdapter
) -> dict[str, Any]:
    owner = ctx.owner
    container = adapter.container(service, model_uri=model_uri(name, service), served_name=name)
    rollout = service.rollout
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": owner.metadata(engine_name(name), ctx.namespace, ENGINE, name),
        "spec": {
            "replicas": service.replicas,
            "selector": {"matchLabels": owner.selector(ENGINE, name)},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {
                    "maxSurge": rollout.max_surge,
                    "maxUnavailable": rollout.max_unavailable,
                },
            },
            "progressDeadlineSeconds": progress_deadline_s(service),
            "revisionHistoryLimit": 3,
            "template": {
                "metadata": {"labels": owner.pod_labels(ENGINE, name)},
                "spec": _pod_spec(ctx, name, service, adapter, container),
            },
        },
    }


def _pod_spec(
    ctx: RenderContext,
    name: str,
    service: ServiceSpec,
    adapter: EngineAdapter,
    container: ContainerSpec,
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": pods.pod_security(),
        "terminationGracePeriodSeconds": grace_period_s(service),
        "topologySpreadConstraints": [_spread(ctx, name)],
        **gpu_scheduling(service.resources, ctx.environment.backend.gpu_products),
        "containers": [_engine_container(name, service, adapter, container)],
        "volumes": [_models_volume(service), pods.tmp_volume()],
    }
    if service.model.scheme != "sim":
        spec["initContainers"] = [fetch_container(ctx, name, service)]
    return spec


def _spread(ctx: RenderContext, name: str) -> dict[str, Any]:
    """Replicas on different nodes where there are nodes enough, so one node's loss is one
    replica's; never a reason to leave a pod pending."""
    return {
        "maxSkew": 1,
        "topologyKey": "kubernetes.io/hostname",
        "whenUnsatisfiable": "ScheduleAnyway",
        "labelSelector": {"matchLabels": ctx.owner.selector(ENGINE, name)},
    }


def _engine_container(
    name: str, service: ServiceSpec, adapter: EngineAdapter, container: ContainerSpec
) -> dict[str, Any]:
    env: list[dict[str, Any]] = [
        {"name": key, "value": value} for key, value in sorted(container.env.items())
    ]
    env.append({"name": "HOME", "value": "/tmp"})  # noqa: S108 - caches go to the pod's /tmp
    if container.api_key_env is not None:
        secret = {"name": engine_key_secret(name), "key": KEY_FIELD}
        env.append({"name": container.api_key_env, "valueFrom": {"secretKeyRef": secret}})
    return {
        "name": "engine",
        "image": container.image,
        "args": list(container.args),
        "ports": [{"name": PORT_NAME, "containerPort": container.port, "protocol": "TCP"}],
        "env": env,
        "resources": pods.container_resources(service.resources),
        "securityContext": pods.container_security(),
        "startupProbe": pods.startup_probe(
            adapter.liveness, PORT_NAME, budget_s=service.rollout.startup_s
        ),
        "readinessProbe": pods.readiness_probe(adapter.readiness[0], PORT_NAME),
        "livenessProbe": pods.liveness_probe(adapter.liveness, PORT_NAME),
        "lifecycle": {"preStop": {"exec": {"command": ["sleep", str(DRAIN_S)]}}},
        "volumeMounts": [
            {"name": MODELS_VOLUME, "mountPath": MODELS_MOUNT, "readOnly": True},
            pods.tmp_mount(),
        ],
    }


def fetch_container(ctx: RenderContext, name: str, service: ServiceSpec) -> dict[str, Any]:
    """Fetches exactly the spec's model into the volume, checks its sha256, logs progress."""
    args = [
        "--source",
        service.model.source,
        "--root",
        MODELS_MOUNT,
        "--link",
        model_link(name, service.model.source),
    ]
    if service.model.sha256 is not None:
        args += ["--sha256", service.model.sha256]
    return {
        "name": "fetch-model",
        "image": ctx.image,
        "command": ["python", "-m", FETCH_MODULE],
        "args": args,
        "env": [{"name": "HOME", "value": "/tmp"}],  # noqa: S108 - pip's cache, in the pod
        "resources": {"requests": {"cpu": "500m", "memory": "512Mi"}, "limits": {"memory": "2Gi"}},
        "securityContext": pods.container_security(),
        "volumeMounts": [{"name": MODELS_VOLUME, "mountPath": MODELS_MOUNT}, pods.tmp_mount()],
    }


def _models_volume(service: ServiceSpec) -> dict[str, Any]:
    volume = service.model_volume
    if volume.claim is not None:
        return {"name": MODELS_VOLUME, "persistentVolumeClaim": {"claimName": volume.claim}}
    empty: dict[str, Any] = {} if volume.size is None else {"sizeLimit": volume.size}
    return {"name": MODELS_VOLUME, "emptyDir": empty}
