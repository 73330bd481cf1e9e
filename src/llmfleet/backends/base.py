"""The Backend protocol (where an environment runs) and the replica vocabulary.

``apply`` is the only caller that changes anything; ``plan`` only lists. The local
backend runs replicas as processes under a supervising agent; the Kubernetes
backend runs the same containers as pods of Deployments.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

from llmfleet.engines.base import ContainerSpec, LaunchCommand, Probe

if TYPE_CHECKING:  # the seam's types; none imports a backend at run time
    from llmfleet.apply.executor import ApplyContext
    from llmfleet.plan.model import Plan, SeenRuntime
    from llmfleet.plan.seen import ActualEnvironment
    from llmfleet.spec.model import ResolvedEnvironment


class ReplicaState(StrEnum):
    STARTING = "starting"  # process up, readiness not yet passed
    READY = "ready"  # serving
    UNHEALTHY = "unhealthy"  # liveness failing or hardware unhealthy; gateway avoids it
    DRAINING = "draining"  # no new requests; stopping once in-flight ones finish
    BACKOFF = "backoff"  # exited; restarting after a back-off delay
    CRASH_LOOP = "crash-loop"  # exited repeatedly before becoming ready
    STOPPED = "stopped"


SERVING_STATES = frozenset({ReplicaState.READY})


@dataclass(frozen=True)
class ReplicaSpec:
    """What apply asks a backend to run: one replica of one service."""

    replica_id: str
    environment: str
    service: str
    slot: int
    runtime_hash: str
    engine: str
    engine_version: str
    launch: LaunchCommand
    readiness: tuple[Probe, ...]
    liveness: Probe
    metrics_path: str
    served_name: str
    config: dict[str, Any] = field(default_factory=dict)
    """the runtime-relevant part of the service spec, so plan can say what changed."""
    busy_series: tuple[str, ...] = ()
    """engine gauges that are 0 when the replica is idle; draining waits for them."""
    container: ContainerSpec | None = None
    labels: dict[str, str] = field(default_factory=dict)
    port: int | None = None


@dataclass(frozen=True)
class ReplicaStatus:
    """What a backend reports about one replica it runs."""

    replica_id: str
    environment: str
    service: str
    slot: int
    runtime_hash: str
    engine: str
    engine_version: str
    state: ReplicaState
    port: int
    pid: int | None = None
    started_at: float | None = None
    ready_at: float | None = None
    restarts: int = 0
    last_exit: int | None = None
    log_tail: tuple[str, ...] = ()
    served_name: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    host: str = "127.0.0.1"
    """where the engine listens: this machine locally, a pod's address in a cluster."""

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def to_json(self) -> dict[str, Any]:
        body = dict(self.__dict__)
        body["state"] = str(self.state)
        body["log_tail"] = list(self.log_tail)
        return body

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> ReplicaStatus:
        data = dict(body)
        data["state"] = ReplicaState(data["state"])
        data["log_tail"] = tuple(data.get("log_tail", ()))
        return cls(**data)


class Backend(Protocol):
    """Where one environment runs: the seam plan, apply, releases and status go through.

    ``environments.E.backend.kind`` picks the implementation (``cli.workspace`` builds
    it): ``backends.local.fleet.LocalFleet`` (replicas as processes under this
    machine's agent, replaced create-before-destroy one at a time) or
    ``backends.kubernetes.fleet.KubernetesFleet`` (objects in a cluster, changed by
    server-side apply, rolled out by Deployments). Plans use the same vocabulary on
    both (``+ ~ -/+ -``); what an action addresses differs (a replica slot locally,
    ``KIND/NAME`` in a cluster). Apply (``apply.executor``) holds the state lock,
    refuses stale plans and records the revision; ``carry_out`` only changes the
    runtime. Every method is synchronous and safe to call from the CLI.
    """

    kind: str
    """``local`` or ``kubernetes``: what status and messages call it."""

    def actual(self, environment: str) -> ActualEnvironment:
        """What runs in ``environment`` (empty when nothing does); reads only."""

    def seen(self, environment: str) -> SeenRuntime:
        """A digest of what runs that a plan records and apply compares: a saved plan
        whose runtime changed since is refused."""

    def plan(
        self,
        desired: ResolvedEnvironment,
        *,
        serial: int,
        spec_hash: str,
        recorded_services: frozenset[str] = frozenset(),
        recorded_replicas: Mapping[str, int] | None = None,
    ) -> Plan:
        """What ``carry_out`` would change to run ``desired``; changes nothing."""

    def plan_destroy(self, environment: str, *, serial: int) -> Plan:
        """What tearing ``environment`` down removes; changes nothing."""

    def before_apply(self) -> None:
        """Called before an apply plans: the local backend starts its agent, so the plan
        sees the processes it adopts; a cluster needs nothing."""

    def carry_out(self, plan: Plan, desired: ResolvedEnvironment, ctx: ApplyContext) -> None:
        """Make ``plan``'s changes; append each one done to ``ctx.done``. Raises a
        ``FleetError`` when a change fails (what was done stays in ``ctx.done``)."""

    def gateway_url(self, desired: ResolvedEnvironment) -> str:
        """Where clients reach the environment's gateway (OpenAI base URL without /v1)."""

    def gateway_url_from_here(self, desired: ResolvedEnvironment) -> str:
        """Where this process reaches the gateway (validate's suites run there): the
        same as ``gateway_url`` locally; a cluster's may go through its API server.
        Raises a ``BackendError`` naming the fix when nothing reaches it."""

    def close(self) -> None:
        """Release connections; never stops what runs."""
