"""``llmfleet status``: what runs, on this machine and on the spec's clusters.

With ``-e`` it shows one environment, read from its backend. Without, it shows
every environment of the spec: the local runtime's replicas and gateways, and
each cluster environment's pods (node, restarts, why one is not ready). A
cluster that cannot be read is said with its fix and makes the exit status 1;
the rest is still shown. The Kubernetes code is imported only when the spec has
a cluster environment.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import typer
from rich.console import Console

from llmfleet.backends.base import ReplicaStatus
from llmfleet.cli import render
from llmfleet.cli.workspace import Workspace
from llmfleet.spec.placement import BackendKind

if TYPE_CHECKING:
    from llmfleet.backends.local.failed import FailedReplica
    from llmfleet.cli.cluster import ClusterView


@dataclass
class LocalView:
    """The local runtime as status shows it; empty when it is not running."""

    running: bool = False
    replicas: list[ReplicaStatus] = field(default_factory=list)
    gateways: list[ReplicaStatus] = field(default_factory=list)
    failed: list[FailedReplica] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def show_status(console: Console, ws: Workspace, *, env: str | None, as_json: bool) -> None:
    if env is not None and ws.fleet.kind == BackendKind.KUBERNETES:
        from llmfleet.backends.kubernetes.fleet import KubernetesFleet
        from llmfleet.cli.cluster import show_cluster_status

        assert isinstance(ws.fleet, KubernetesFleet)
        show_cluster_status(console, ws.fleet, as_json=as_json)
        return
    clusters = _clusters(ws) if env is None else None
    local = _local(ws, env)
    if as_json:
        _write_json(local, clusters)
    else:
        _render(console, ws, local, clusters)
    if clusters is not None and clusters.problems:
        raise typer.Exit(1)


def _clusters(ws: Workspace) -> ClusterView | None:
    envs = ws.loaded.resolved.environments.values()
    if not any(e.backend.kind is BackendKind.KUBERNETES for e in envs):
        return None
    from llmfleet.cli.cluster import gather_clusters

    return gather_clusters(ws)


def _local(ws: Workspace, env: str | None) -> LocalView:
    backend = ws.backend
    if not backend.running():
        return LocalView()
    return LocalView(
        running=True,
        replicas=backend.list_replicas(env, log_lines=5),
        gateways=[g for g in backend.gateways() if env is None or g.environment == env],
        failed=list(backend.failed_replicas(env)),
        warnings=[str(p) for p in backend.agent_info().get("problems", [])],  # e.g. unsaved
    )


def _write_json(local: LocalView, clusters: ClusterView | None) -> None:
    """One document: a cluster's engine pods among the replicas, its gateway pods among
    the gateways (each names its environment), an unreadable cluster among the warnings."""
    from llmfleet.cli.json_views import dumps, status_document

    pods = clusters.all_pods if clusters else []
    problems = [f"{n}: {e.message}" for n, e in clusters.problems.items()] if clusters else []
    document = status_document(
        running=local.running or bool(pods),
        replicas=[*local.replicas, *(p for p in pods if p.service)],
        gateways=[*local.gateways, *(p for p in pods if not p.service)],
        failed=local.failed,
        warnings=[*local.warnings, *problems],
    )
    sys.stdout.write(dumps(document))


def _render(
    console: Console, ws: Workspace, local: LocalView, clusters: ClusterView | None
) -> None:
    if clusters is not None:
        from llmfleet.cli.cluster import render_clusters

        render_clusters(console, clusters)
    envs = ws.loaded.resolved.environments.values()
    if not local.running:
        if clusters is None or any(e.backend.kind is BackendKind.LOCAL for e in envs):
            console.print("The local runtime is not running. `llmfleet apply` starts it.")
        return
    from llmfleet.cli.failures import render_failed, unready_services

    backend = ws.backend
    unready = {
        g.environment: unready_services(
            backend.environment_config(g.environment).get("services", {}),
            local.replicas,
            g.environment,
        )
        for g in local.gateways
    }
    render.render_status(console, local.replicas, local.gateways, unready=unready)
    render_failed(console, ws, local.failed)
    for problem in local.warnings:
        console.print(f"[bold yellow]warning:[/] {problem}", highlight=False)
