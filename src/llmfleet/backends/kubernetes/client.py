"""The connection to a cluster: one lightkube client; foreign errors become ours here.

Why lightkube and not the official ``kubernetes`` client: server-side apply is a
first-class call (``apply`` with ``field_manager``, ``force`` and ``dry_run``), its
models are typed (mypy strict reads them), it has a sync and an async client over
one config loader that finds the pod's service account inside a cluster and the
kubeconfig (``$KUBECONFIG``, ``~/.kube/config``) outside one. The official client
is generated code typed as ``Any`` whose server-side apply goes through its
dynamic client. lightkube is the optional extra ``llmfleet[kubernetes]``: the
local backend never imports this module.

Everything here speaks plain manifests (dicts), the shape the renderer makes and
plan diffs; typed objects exist only for the length of a call.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from llmfleet.errors import BackendError
from llmfleet.spec.placement import BackendSpec

FIELD_MANAGER = "llmfleet"
Manifest = dict[str, Any]
CUSTOM_KINDS = {
    ("monitoring.coreos.com/v1", "PodMonitor"): "podmonitors",
    ("inference.networking.k8s.io/v1", "InferencePool"): "inferencepools",
}
"""Kinds of optional APIs (CRDs), which lightkube learns as generic resources."""


def connect(backend: BackendSpec, *, namespace: str, server: str | None = None) -> Any:
    """A sync lightkube ``Client`` for ``backend``'s cluster, acting as field manager
    llmfleet (plan and apply)."""
    from lightkube import Client

    config = kube_config(backend, server=server)
    return Client(config=config, namespace=namespace, field_manager=FIELD_MANAGER, lazy=False)


def connect_async(backend: BackendSpec, *, namespace: str, server: str | None = None) -> Any:
    """An async lightkube ``AsyncClient``: waits (watches) run under the loop's clock and
    end at a deadline, which a blocking watch cannot."""
    from lightkube import AsyncClient

    config = kube_config(backend, server=server)
    return AsyncClient(config=config, namespace=namespace, field_manager=FIELD_MANAGER, lazy=False)


def kube_config(backend: BackendSpec, *, server: str | None = None) -> Any:
    """The cluster and credentials: ``server`` (an ``http://`` URL: ``kubectl proxy``, a
    test's fake API server) when given; else the pod's service account inside a cluster;
    else the kubeconfig's context ``backend.context`` (its current one when left out)."""
    try:
        from lightkube import KubeConfig
        from lightkube.config.models import Cluster, User
        from lightkube.core.exceptions import ConfigError
    except ImportError as exc:
        raise BackendError(
            "a kubernetes backend needs the lightkube library",
            hint="pip install 'llmfleet[kubernetes]'",
        ) from exc
    try:
        if server:  # a user without credentials: the proxy in front holds them
            return KubeConfig.from_one(cluster=Cluster(server=server), user=User()).get()
        return KubeConfig.from_env().get(context_name=backend.context)
    except (ConfigError, OSError, KeyError, ValueError) as exc:
        where = f"context '{backend.context}'" if backend.context else "the current context"
        raise BackendError(
            f"no Kubernetes configuration for {where}: {exc}",
            hint="check `kubectl config get-contexts`, or set backend.context in fleet.yaml",
        ) from exc


def resource_type(api_version: str, kind: str) -> Any:
    """lightkube's class for ``kind``; generic ones for the optional APIs' kinds."""
    from lightkube.core.resource_registry import resource_registry
    from lightkube.generic_resource import create_namespaced_resource, get_generic_resource

    plural = CUSTOM_KINDS.get((api_version, kind))
    if plural is not None:
        known = get_generic_resource(api_version, kind)  # type: ignore[no-untyped-call]
        if known is not None:
            return known
        group, version = api_version.split("/")
        return create_namespaced_resource(group, version, kind, plural)
    return resource_registry.load(api_version, kind)


def to_resource(manifest: Manifest) -> Any:
    return resource_type(manifest["apiVersion"], manifest["kind"]).from_dict(manifest)


def to_manifest(resource: Any, *, api_version: str, kind: str) -> Manifest:
    """A returned object as a manifest (lightkube leaves a list's items without kind)."""
    body: Manifest = resource.to_dict() if hasattr(resource, "to_dict") else dict(resource)
    body.setdefault("apiVersion", api_version)
    body.setdefault("kind", kind)
    return body


def status_of(exc: Exception) -> int | None:
    """The HTTP status of a lightkube ``ApiError``, else None."""
    status = getattr(exc, "status", None)
    code = getattr(status, "code", None)
    return code if isinstance(code, int) else None


def causes_of(exc: Exception) -> list[dict[str, str]]:
    """The ``details.causes`` of an API error: which fields, which managers."""
    details = getattr(getattr(exc, "status", None), "details", None)
    causes = getattr(details, "causes", None) or []
    return [
        {"field": c.field or "", "message": c.message or "", "reason": c.reason or ""}
        for c in causes
    ]


@contextlib.contextmanager
def translated(doing: str) -> Iterator[None]:
    """Turn the cluster's refusals and a lost connection into ``BackendError``s that say
    what was being done and how to go on."""
    from httpx2 import HTTPError
    from lightkube import ApiError

    try:
        yield
    except ApiError as exc:
        code = status_of(exc)
        message = getattr(exc.status, "message", None) or str(exc)
        hint = {
            401: "the credentials of the kubeconfig context expired: log in to the cluster again",
            403: "the kubeconfig user may not do this: ask for a Role allowing it in the namespace",
            404: "the namespace may not exist: kubectl create namespace NAME",
        }.get(code or 0)
        raise BackendError(f"{doing}: the cluster answered {code}: {message}", hint=hint) from exc
    except HTTPError as exc:
        raise BackendError(
            f"{doing}: the cluster's API server is not reachable: {exc}",
            hint="check the network and `kubectl cluster-info` for the same context",
        ) from exc
