"""``status`` of an environment that runs on a cluster: its pods, where they run, and
why one is not ready (ImagePullBackOff, Insufficient nvidia.com/gpu, OOMKilled, ...)."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass, field

from rich.console import Console
from rich.table import Table
from rich.text import Text

from llmfleet.backends.base import Backend, ReplicaState, ReplicaStatus
from llmfleet.backends.kubernetes.fleet import KubernetesFleet
from llmfleet.backends.kubernetes.rollout import failure_hint
from llmfleet.cli.render import STATE_STYLE
from llmfleet.cli.workspace import Workspace
from llmfleet.errors import FleetError
from llmfleet.spec.placement import BackendKind


def show_cluster_status(console: Console, fleet: KubernetesFleet, *, as_json: bool) -> None:
    pods = fleet.pods(log_lines=5)
    engines = [p for p in pods if p.service]
    gateways = [p for p in pods if not p.service]
    if as_json:
        from llmfleet.cli.json_views import dumps, status_document

        document = status_document(running=bool(pods), replicas=engines, gateways=gateways)
        sys.stdout.write(dumps(document))
        return
    if not pods:
        where = f"{fleet.environment} in namespace {fleet.namespace}"
        console.print(Text(f"No pods of {where}. `llmfleet apply` creates them."))
        return
    render_pods(console, pods, namespace=fleet.namespace)


@dataclass
class ClusterView:
    """What plain ``status`` shows of the spec's cluster environments: each one's pods,
    and, for one that could not be read, why (the others are still shown)."""

    namespaces: dict[str, str] = field(default_factory=dict)
    pods: dict[str, list[ReplicaStatus]] = field(default_factory=dict)
    problems: dict[str, FleetError] = field(default_factory=dict)

    @property
    def all_pods(self) -> list[ReplicaStatus]:
        return [pod for pods in self.pods.values() for pod in pods]


def cluster_environments(ws: Workspace) -> list[str]:
    """The spec's environments that run on a cluster, in the spec's order."""
    envs = ws.loaded.resolved.environments
    return [name for name, env in envs.items() if env.backend.kind is BackendKind.KUBERNETES]


def untouched_clusters(ws: Workspace) -> str:
    """What ``down`` says of the cluster environments it leaves running."""
    from llmfleet.backends.kubernetes.names import namespace_of

    envs = ws.loaded.resolved.environments
    fleet = ws.loaded.resolved.name
    where = ", ".join(
        f"{name} (namespace {namespace_of(fleet, name, envs[name].backend)})"
        for name in cluster_environments(ws)
    )
    return (
        f"down stops only this machine's runtime; it leaves the environments on a cluster "
        f"as they are: {where}. `llmfleet destroy -e ENV` removes one"
    )


def gather_clusters(ws: Workspace) -> ClusterView:
    """Each cluster environment's pods (with the last log lines of one that restarted
    and is not ready); a cluster that cannot be read is a problem of its own."""
    view = ClusterView()
    for name in cluster_environments(ws):
        fleet = ws.fleet_for(name)
        assert isinstance(fleet, KubernetesFleet)
        view.namespaces[name] = fleet.namespace
        try:
            view.pods[name] = fleet.pods(log_lines=5)
        except FleetError as exc:
            view.problems[name] = exc
    return view


def render_clusters(console: Console, view: ClusterView) -> None:
    for name, namespace in view.namespaces.items():
        if name in view.problems:
            problem = view.problems[name]
            console.print(Text(f"{name} (namespace {namespace}): ", style="bold red")
                          + Text(problem.message))  # fmt: skip
            if problem.hint:
                console.print(Text(f"    fix: {problem.hint}"))
        elif not view.pods[name]:
            console.print(Text(f"No pods of {name} in namespace {namespace}. "
                               f"`llmfleet apply -e {name}` creates them."))  # fmt: skip
        else:
            render_pods(console, view.pods[name], namespace=namespace)


def render_pods(console: Console, pods: Sequence[ReplicaStatus], *, namespace: str) -> None:
    table = Table(title=f"Pods in namespace {namespace}", title_justify="left")
    for column in ("env", "service", "pod", "engine", "state", "node", "ip", "restarts"):
        table.add_column(column, justify="right" if column == "restarts" else "left")
    for pod in sorted(pods, key=lambda p: (p.service, p.replica_id)):
        table.add_row(
            Text(pod.environment),
            Text(pod.service or "(gateway)"),
            Text(pod.replica_id),
            Text(f"{pod.engine} {pod.engine_version}"),
            Text(str(pod.state), style=STATE_STYLE.get(pod.state, "")),
            Text(str(pod.config.get("node", "-"))),
            Text(pod.host or "-"),
            str(pod.restarts),
        )
    console.print(table)
    for pod in pods:
        if pod.state is not ReplicaState.READY and pod.log_tail:
            console.print(Text(pod.replica_id, style="bold red") + Text(" is not ready:"))
            for line in pod.log_tail:
                console.print(Text(f"    | {line}"))
            console.print(Text(f"    fix: {failure_hint(pod.log_tail)}"))


def show_cluster_logs(
    console: Console, fleet: Backend, service: str, *, lines: int, raw: bool
) -> None:
    """``logs SERVICE`` (or ``gateway``): each pod's last ``lines`` lines, by pod name;
    JSON lines read as the local ``logs`` reads them unless ``raw``."""
    from llmfleet.cli.render import log_line_text
    from llmfleet.observe.log_lines import read_log_line

    assert isinstance(fleet, KubernetesFleet)
    pods = [p for p in fleet.pods() if p.service == ("" if service == "gateway" else service)]
    if not pods:
        raise FleetError(f"no pod of {service} in namespace {fleet.namespace}")
    for pod in pods:
        console.print(Text(f"==> {pod.replica_id} <==", style="bold"))
        for line in fleet.logs(pod.replica_id, lines=lines, container=pod.engine):
            entry = None if raw else read_log_line(line)
            console.print(Text(line) if entry is None else log_line_text(entry), soft_wrap=True)
