"""The Kubernetes backend as a ``Backend``: an environment as objects in a cluster.

Plan renders the environment (``render``), asks the cluster what server-side
apply would change (``planning``: dry runs, diffs, conflicts, prunes) and shows
each object as one action (``+ Deployment/chat`` with the fields that change).
Carrying a plan out makes the engines' API key Secrets that are missing (a key
is made here and never written into a manifest or the state), applies the
objects in dependency order (``applying``), then waits for every changed
Deployment as ``kubectl rollout status`` does (``rollout``). A destroy deletes
every object labelled as this fleet's environment.

What a saved plan is checked against (``seen``) is the live objects without
status and the server's bookkeeping: a pod restarting or a Deployment's status
moving does not make a plan stale; a changed or deleted object does.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from llmfleet.backends.base import ReplicaState, ReplicaStatus
from llmfleet.backends.kubernetes import observing, reaching
from llmfleet.backends.kubernetes.applying import apply_objects
from llmfleet.backends.kubernetes.client import (
    Manifest,
    connect,
    connect_async,
    kube_config,
    resource_type,
    status_of,
    to_manifest,
    translated,
)
from llmfleet.backends.kubernetes.context import OPTIONAL_APIS, RenderContext
from llmfleet.backends.kubernetes.diffing import strip_noise
from llmfleet.backends.kubernetes.keys import (
    make_agent_secrets,
    make_missing_keys,
    missing_agent_secrets,
    missing_keys,
    retire_agent_secrets,
)
from llmfleet.backends.kubernetes.labels import SERVICE, Owner
from llmfleet.backends.kubernetes.names import engine_key_secret
from llmfleet.backends.kubernetes.planning import (
    PRUNABLE,
    Action,
    ObjectChange,
    ObjectPlan,
    plan_objects,
    prune_selector,
)
from llmfleet.backends.kubernetes.render import (
    agent_secrets,
    keyed_services,
    render_environment,
)
from llmfleet.backends.kubernetes.rollout import wait_rollout
from llmfleet.backends.kubernetes.workloads import progress_deadline_s
from llmfleet.errors import BackendError
from llmfleet.plan.model import Action as PlanAction
from llmfleet.plan.model import Op, Plan, SeenRuntime, Target
from llmfleet.plan.seen import ActualEnvironment
from llmfleet.spec.model import ResolvedEnvironment
from llmfleet.spec.placement import BackendSpec

if TYPE_CHECKING:
    from llmfleet.apply.executor import ApplyContext

OPS = {Action.CREATE: Op.CREATE, Action.UPDATE: Op.UPDATE, Action.REPLACE: Op.REPLACE,
       Action.DELETE: Op.DELETE}  # fmt: skip
KEYS = ("v1", "Secret")
"""The engine key Secrets llmfleet makes: deleted with the environment, never rendered."""
WAIT_MARGIN_S = 60.0


class KubernetesFleet:
    """``Backend`` for one environment in one namespace of a cluster.

    ``server`` is a plain ``http://`` API URL (``kubectl proxy``); left out, the
    kubeconfig (its context ``spec.context``) or the pod's service account."""

    kind = "kubernetes"

    def __init__(
        self,
        *,
        fleet: str,
        environment: str,
        spec: BackendSpec,
        namespace: str,
        server: str | None = None,
    ) -> None:
        self.fleet, self.environment, self.spec = fleet, environment, spec
        self.namespace, self.server = namespace, server
        self._client: Any = None
        self._apis: frozenset[str] | None = None

    # --- reading ----------------------------------------------------------------------
    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = connect(self.spec, namespace=self.namespace, server=self.server)
        return self._client

    @property
    def owner(self) -> Owner:
        return Owner(self.fleet, self.environment)

    def actual(self, environment: str) -> ActualEnvironment:
        """The environment's pods as replicas (engines) and its gateway's first pod."""
        pods = self.pods()
        engines = [p for p in pods if p.service]
        gateways = [p for p in pods if not p.service]
        deployments = self._live(kinds=[("apps/v1", "Deployment")])
        services: dict[str, dict[str, Any]] = {
            labels[SERVICE]: {}
            for body in deployments
            if SERVICE in (labels := body["metadata"].get("labels") or {})
        }
        return ActualEnvironment(
            replicas=engines, services=services, gateway=gateways[0] if gateways else None
        )

    def pods(self, *, log_lines: int = 0) -> list[ReplicaStatus]:
        """Every pod of the environment, engines and gateways, as ``ReplicaStatus``; a pod
        that restarted and is not ready gets its engine's last ``log_lines`` lines too."""
        from lightkube.resources.core_v1 import Pod

        with translated(f"listing the pods of namespace {self.namespace}"):
            found = self.client.list(
                Pod, namespace=self.namespace, labels=prune_selector(self.owner)
            )
            bodies = [to_manifest(p, api_version="v1", kind="Pod") for p in found]
        pods = observing.pod_replicas(bodies, environment=self.environment)
        if log_lines:
            pods = [self._with_log(p, log_lines) for p in pods]
        return pods

    def _with_log(self, pod: ReplicaStatus, lines: int) -> ReplicaStatus:
        if pod.state is ReplicaState.READY or not pod.restarts:
            return pod
        tail = [f"log: {line}" for line in self.logs(pod.replica_id, lines=lines,
                                                     container=pod.engine, quiet=True)]  # fmt: skip
        return replace(pod, log_tail=(*pod.log_tail, *tail))

    def logs(
        self, pod: str, *, lines: int, container: str | None = None, quiet: bool = False
    ) -> list[str]:
        """The last ``lines`` lines of a pod's container (its only one when None); [] when
        ``quiet`` and the cluster has none (a container that never started)."""
        from lightkube import ApiError

        try:
            with translated(f"reading the log of pod {pod}"):
                text = self.client.log(
                    pod, namespace=self.namespace, container=container, tail_lines=lines
                )
                return [line.rstrip("\n") for line in text]
        except BackendError as exc:
            if quiet and isinstance(exc.__cause__, ApiError):
                return []
            raise

    def seen(self, environment: str) -> SeenRuntime:
        """Over the live objects as diffs see them; a Secret's data is left out (a plan,
        and so the state, holds no key, not even hashed)."""
        live = sorted(json.dumps(_seen_part(body), sort_keys=True) for body in self._live())
        digest = hashlib.sha256("\n".join(live).encode()).hexdigest()
        summary = f"{len(live)} objects in namespace {self.namespace}"
        return SeenRuntime(digest=digest, summary=summary)

    def _live(self, kinds: list[tuple[str, str]] | None = None) -> list[Manifest]:
        """This environment's live objects of ``kinds`` (default: every kind it renders
        or makes), by label."""
        bodies: list[Manifest] = []
        for api_version, kind in kinds or self._kinds():
            with translated(f"listing the {kind}s of namespace {self.namespace}"):
                found = self.client.list(
                    resource_type(api_version, kind),
                    namespace=self.namespace,
                    labels=prune_selector(self.owner),
                )
                bodies += [to_manifest(i, api_version=api_version, kind=kind) for i in found]
        return bodies

    def _kinds(self) -> list[tuple[str, str]]:
        optional = [tuple(api.rsplit("/", 1)) for api in sorted(self.served_apis())]
        return [*PRUNABLE, KEYS, *((a, k) for a, k in optional)]

    def served_apis(self) -> frozenset[str]:
        """The optional APIs (CRDs) the cluster serves: a LIST of each kind answers, or
        404 says no such resource. Asked once per command."""
        from lightkube import ApiError

        if self._apis is None:
            served = set()
            for api in sorted(OPTIONAL_APIS):
                api_version, kind = api.rsplit("/", 1)
                with translated(f"asking whether the cluster serves {api}"):
                    try:
                        list(self.client.list(
                            resource_type(api_version, kind), namespace=self.namespace,
                            chunk_size=1,
                        ))  # fmt: skip
                    except ApiError as exc:
                        if status_of(exc) == 404:
                            continue
                        raise
                served.add(api)
            self._apis = frozenset(served)
        return self._apis

    # --- planning ---------------------------------------------------------------------
    def render(self, desired: ResolvedEnvironment) -> tuple[RenderContext, list[Manifest]]:
        ctx = RenderContext(fleet=self.fleet, environment=desired, apis=self.served_apis())
        return ctx, render_environment(ctx)

    def object_plan(self, desired: ResolvedEnvironment, *, force: bool = False) -> ObjectPlan:
        ctx, objects = self.render(desired)
        return plan_objects(
            self.client, objects, owner=ctx.owner, namespace=self.namespace, force_conflicts=force
        )

    def plan(
        self,
        desired: ResolvedEnvironment,
        *,
        serial: int,
        spec_hash: str,
        recorded_services: frozenset[str] = frozenset(),
        recorded_replicas: Mapping[str, int] | None = None,
    ) -> Plan:
        seen = self.seen(desired.name)
        result = self.object_plan(desired)
        notes = (
            tuple(
                f"{c.ref}: {', '.join(c.conflicts)}; apply takes them only with --force-conflicts"
                for c in result.conflicts
            )
            + tuple(
                f"Secret/{engine_key_secret(name)} is made at apply: a new random engine key"
                for name in missing_keys(self.client, self.namespace, keyed_services(desired))
            )
            + tuple(
                f"Secret/{name} is made at apply: a new API key for an agent, scoped to its "
                "models (its hash in the state store, the key only in the Secret)"
                for name in missing_agent_secrets(
                    self.client, self.namespace, self._agents(desired)
                )
            )
        )
        actions = tuple(_action(change) for change in result.pending)
        return Plan(desired.name, serial, spec_hash, actions, notes=notes, seen=seen)

    def plan_destroy(self, environment: str, *, serial: int) -> Plan:
        seen = self.seen(environment)
        actions = tuple(_action(change) for change in self._destroy_changes())
        return Plan(environment, serial, "", actions, seen=seen)

    def _destroy_changes(self) -> list[ObjectChange]:
        """Every object of the environment, deleted in the reverse of apply order."""
        return [
            ObjectChange(Action.DELETE, body["apiVersion"], body["kind"], body["metadata"]["name"])
            for body in reversed(self._live())
        ]

    # --- changing ---------------------------------------------------------------------
    def before_apply(self) -> None:
        """Nothing: the cluster runs whether or not llmfleet does."""

    def carry_out(self, plan: Plan, desired: ResolvedEnvironment, ctx: ApplyContext) -> None:
        if not desired.services:
            result = ObjectPlan(self.namespace, tuple(self._destroy_changes()))
        else:
            agents = {n: s.agent for n, s in desired.services.items() if s.agent is not None}
            if agents and ctx.state_url.startswith("sqlite"):
                ctx.progress(
                    "note: agent keys go into this machine's SQLite state; the cluster's "
                    f"gateway checks keys in the database of Secret {self.spec.state_secret}, "
                    "so give the spec that database as its state: (PostgreSQL)"
                )
            make_agent_secrets(
                self.client, ctx.store, self.owner, self.namespace, agents, ctx.progress,
                os.environ,
            )  # fmt: skip
            make_missing_keys(
                self.client, self.owner, self.namespace, keyed_services(desired), ctx.progress
            )
            result = self.object_plan(desired, force=ctx.force_conflicts)
        ctx.progress(f"server-side apply of {len(result.pending)} objects to {self.namespace}")
        ctx.done.extend(apply_objects(self.client, result, force_conflicts=ctx.force_conflicts))
        rolled = [c.name for c in result.pending
                  if c.kind == "Deployment" and c.action in (Action.CREATE, Action.UPDATE,
                                                             Action.REPLACE)]  # fmt: skip
        if rolled:
            ctx.progress(f"waiting for {', '.join(rolled)} to roll out")
            asyncio.run(self._wait(rolled, timeout_s=self._wait_budget_s(desired)))
        # the replaced agents' pods are gone: their Secrets and keys go too
        retire_agent_secrets(
            self.client, ctx.store, self.owner, self.namespace, self._agents(desired),
            ctx.progress,
        )  # fmt: skip

    def _agents(self, desired: ResolvedEnvironment) -> list[str]:
        """The agent Secrets ``desired`` refers to."""
        ctx = RenderContext(fleet=self.fleet, environment=desired)
        return agent_secrets(ctx)

    async def _wait(self, names: list[str], *, timeout_s: float) -> None:
        async with connect_async(self.spec, namespace=self.namespace, server=self.server) as aio:
            await wait_rollout(aio, names, namespace=self.namespace, timeout_s=timeout_s)

    @staticmethod
    def _wait_budget_s(desired: ResolvedEnvironment) -> float:
        deadlines = [progress_deadline_s(s) for s in desired.services.values()]
        return max(deadlines, default=0) + WAIT_MARGIN_S

    def gateway_url(self, desired: ResolvedEnvironment) -> str:
        """``backend.gateway_url`` (an Ingress or LoadBalancer), else the gateway Service
        inside the cluster (reach it from outside with ``kubectl port-forward``)."""
        if self.spec.gateway_url:
            return self.spec.gateway_url.rstrip("/")
        return reaching.cluster_address(self.namespace, desired.gateway.port)

    def gateway_url_from_here(self, desired: ResolvedEnvironment) -> str:
        """See ``reaching``: the configured address, the Service in a pod, else the API
        server's service proxy when the API is plain http."""
        api = self.server
        if api is None and not self.spec.gateway_url:
            api = str(kube_config(self.spec).cluster.server)
        return reaching.gateway_url_from_here(
            environment=self.environment, namespace=self.namespace, port=desired.gateway.port,
            configured=self.spec.gateway_url, api_server=api,
            in_cluster=bool(os.environ.get("KUBERNETES_SERVICE_HOST")),
        )  # fmt: skip

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


def _seen_part(body: Manifest) -> Manifest:
    seen = strip_noise(body)
    if body.get("kind") == "Secret":
        seen.pop("data", None)
        seen.pop("stringData", None)
    return seen


def _action(change: ObjectChange) -> PlanAction:
    return PlanAction(
        op=OPS[change.action],
        target=Target.OBJECT,
        object=change.ref,
        reasons=tuple(change.fields) + tuple(f"conflict: {c}" for c in change.conflicts),
    )
