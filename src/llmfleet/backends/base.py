"""The Backend protocol: where replicas actually run.

``apply`` is the only caller that changes anything; ``plan`` only lists. The local
backend runs replicas as processes under a supervising agent; a Kubernetes
backend runs the same ``ReplicaSpec`` as pods from its ``container``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from llmfleet.engines.base import ContainerSpec, LaunchCommand, Probe


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
    """Runs replicas. Every method is synchronous and safe to call from the CLI."""

    name: str

    def list_replicas(self, environment: str | None = None) -> list[ReplicaStatus]:
        """Every replica this backend runs (any state), optionally of one environment."""

    def start_replica(self, spec: ReplicaSpec) -> ReplicaStatus:
        """Start a replica and return at once (state STARTING)."""

    def wait_ready(self, replica_ids: Sequence[str], *, timeout_s: float) -> None:
        """Block until all are READY; raise ``ReplicaFailedError`` (with log tail) if one
        crash-loops or the timeout passes."""

    def stop_replica(self, replica_id: str, *, drain_timeout_s: float) -> None:
        """Drain (no new requests, wait for in-flight ones) then stop and forget it."""

    def logs(self, replica_id: str, *, lines: int) -> list[str]:
        """The last ``lines`` lines of a replica's output."""
