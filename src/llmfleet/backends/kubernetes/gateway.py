"""The environment's gateway in the cluster: its identity, its config, its pods; pure.

The gateway finds replicas by watching the EndpointSlices of each service's
headless Service, so its Role allows exactly that: list and watch
EndpointSlices, in its own namespace. Engine keys reach it as files from the
engines' Secrets, the state URL (API keys) as a variable from a Secret: neither
is ever in a manifest.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from llmfleet.backends.kubernetes import pods
from llmfleet.backends.kubernetes.context import RenderContext
from llmfleet.backends.kubernetes.labels import GATEWAY as COMPONENT
from llmfleet.backends.kubernetes.names import GATEWAY, KEY_FIELD, engine_key_secret, engine_name
from llmfleet.backends.kubernetes.services import disruption_budget
from llmfleet.engines.registry import get_adapter
from llmfleet.observe.process_env import gateway_env

CONFIG_MOUNT = "/etc/llmfleet"
KEYS_MOUNT = "/etc/llmfleet/engine-keys"
STATE_URL_KEY = "url"
CONFIG_DIGEST_ANNOTATION = "llmfleet.io/config-sha256"


def gateway_objects(ctx: RenderContext, ports: dict[str, int]) -> list[dict[str, Any]]:
    """ServiceAccount, Role, RoleBinding, ConfigMap, Deployment, Service and (2+ pods) PDB."""
    config = _config_map(ctx, _meta(ctx), ports)
    objects = [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta(ctx),
         "automountServiceAccountToken": False},
        _role(_meta(ctx)),
        _role_binding(ctx, _meta(ctx)),
        config,
        _deployment(ctx, _meta(ctx), config_body=config["data"]["services.json"]),
        _service(ctx, _meta(ctx)),
    ]  # fmt: skip
    if ctx.environment.backend.gateway_replicas >= 2:
        selector = ctx.owner.selector(COMPONENT)
        objects.append(
            disruption_budget(
                ctx, name=GATEWAY, component=COMPONENT, selector=selector, service=None
            )
        )
    return objects


def _meta(ctx: RenderContext) -> dict[str, Any]:
    """A fresh mapping per object: a shared one would be written as a YAML alias."""
    return ctx.owner.metadata(GATEWAY, ctx.namespace, COMPONENT)


def _role(meta: dict[str, Any]) -> dict[str, Any]:
    rule = {
        "apiGroups": ["discovery.k8s.io"],
        "resources": ["endpointslices"],
        "verbs": ["list", "watch"],
    }
    return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": meta,
            "rules": [rule]}  # fmt: skip


def _role_binding(ctx: RenderContext, meta: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": meta,
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": GATEWAY},
        "subjects": [{"kind": "ServiceAccount", "name": GATEWAY, "namespace": ctx.namespace}],
    }


def _config_map(ctx: RenderContext, meta: dict[str, Any], ports: dict[str, int]) -> dict[str, Any]:
    """What the gateway routes by (``gateway.discovery`` reads it)."""
    services = ctx.environment.services
    engines = [name for name, service in services.items() if service.agent is None]
    body = services_document(
        ctx,
        endpoints={name: (engine_name(name), port) for name, port in ports.items()},
        key_files={name: f"{KEYS_MOUNT}/{name}" for name in engines},
        namespace=ctx.namespace,
    )
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta,
            "data": {"services.json": body}}  # fmt: skip


def services_document(
    ctx: RenderContext,
    *,
    endpoints: dict[str, tuple[str, int]],
    key_files: dict[str, str],
    namespace: str = "",
) -> str:
    """The gateway's ``services.json`` (``gateway.discovery.load_cluster_services``):
    each service's spec, the fields that make its engine continue a message, the name
    and port its replicas are found at, and the file holding its engine's key."""
    services = {
        name: {
            "spec": service.model_dump(mode="json"),
            "continuation": dict(get_adapter(service.engine.kind).continuation_fields()),
            "endpoints": {"service": endpoints[name][0], "port": endpoints[name][1]},
            **({"key_file": key_files[name]} if name in key_files else {}),
        }
        for name, service in sorted(ctx.environment.services.items())
    }
    document = {"environment": ctx.environment.name, "namespace": namespace,
                "services": services}  # fmt: skip
    return json.dumps(document, indent=2, sort_keys=True)


def _deployment(ctx: RenderContext, meta: dict[str, Any], *, config_body: str) -> dict[str, Any]:
    """The gateway reads its config at start: the config's digest on the pod template
    rolls the pods (one at a time, none unavailable) whenever the config changes."""
    gateway = ctx.environment.gateway
    digest = hashlib.sha256(config_body.encode()).hexdigest()
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta,
        "spec": {
            "replicas": ctx.environment.backend.gateway_replicas,
            "selector": {"matchLabels": ctx.owner.selector(COMPONENT)},
            "strategy": {"type": "RollingUpdate",
                         "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": {
                "metadata": {"labels": ctx.owner.pod_labels(COMPONENT),
                             "annotations": {CONFIG_DIGEST_ANNOTATION: digest}},
                "spec": {
                    "serviceAccountName": GATEWAY,
                    "automountServiceAccountToken": True,  # it watches EndpointSlices
                    "enableServiceLinks": False,
                    "securityContext": pods.pod_security(),
                    "containers": [_container(ctx, gateway.port)],
                    "volumes": _volumes(ctx),
                },
            },
        },
    }  # fmt: skip


def _container(ctx: RenderContext, port: int) -> dict[str, Any]:
    args = ["--environment", ctx.environment.name, "--host", "0.0.0.0", "--port", str(port),
            "--kubernetes-config", f"{CONFIG_MOUNT}/services.json"]  # fmt: skip
    told = {"HOME": "/tmp", **gateway_env(ctx.environment.observability)}  # noqa: S108
    env: list[dict[str, Any]] = [{"name": k, "value": v} for k, v in sorted(told.items())]
    secret = ctx.environment.backend.state_secret
    if secret is not None:
        ref = {"secretKeyRef": {"name": secret, "key": STATE_URL_KEY}}
        env.append({"name": "LLMFLEET_STATE_URL", "valueFrom": ref})
    health = {"httpGet": {"path": "/health", "port": "http"}, "timeoutSeconds": 2}
    return {
        "name": "gateway",
        "image": ctx.image,
        "command": ["python", "-m", "llmfleet.gateway"],
        "args": args,
        "ports": [{"name": "http", "containerPort": port, "protocol": "TCP"}],
        "env": env,
        "resources": {"requests": {"cpu": "500m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}},
        "securityContext": pods.container_security(),
        "readinessProbe": {**health, "periodSeconds": 5, "failureThreshold": 2},
        "livenessProbe": {**health, "periodSeconds": 10, "failureThreshold": 6},
        "volumeMounts": [
            {"name": "config", "mountPath": CONFIG_MOUNT, "readOnly": True},
            {"name": "engine-keys", "mountPath": KEYS_MOUNT, "readOnly": True},
            pods.tmp_mount(),
        ],
    }


def _volumes(ctx: RenderContext) -> list[dict[str, Any]]:
    keys = [
        {"secret": {"name": engine_key_secret(name),
                    "items": [{"key": KEY_FIELD, "path": name}]}}
        for name, service in sorted(ctx.environment.services.items())
        if service.agent is None  # an agent wants no engine key: it is sent none
    ]  # fmt: skip
    return [
        {"name": "config", "configMap": {"name": GATEWAY}},
        {"name": "engine-keys", "projected": {"sources": keys, "defaultMode": 0o440}},
        pods.tmp_volume(),
    ]


def _service(ctx: RenderContext, meta: dict[str, Any]) -> dict[str, Any]:
    port = ctx.environment.gateway.port
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta,
        "spec": {
            "selector": ctx.owner.selector(COMPONENT),
            "ports": [{"name": "http", "port": port, "targetPort": "http"}],
        },
    }
