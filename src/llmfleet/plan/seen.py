"""What runs in an environment, and what a plan saw of it, so a saved plan is checked
against what runs now; pure.

A plan is built from the spec, the state serial and what runs. The serial covers the
first two; this covers the third: ``llmfleet down`` or a replica that vanished after
``plan --out`` makes the saved plan wrong (its creates, deletes and replaces were
chosen for processes that are gone), and applying it anyway used to record a success
and print a gateway URL where nothing listened.

The digest covers which replicas run (id, runtime, stopped or not), the gateway and
the config the runtime holds; not passing states (ready, unhealthy, backoff) or
restart counts, which change by the second and do not change what the plan does.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from llmfleet.backends.base import ReplicaState, ReplicaStatus
from llmfleet.plan.model import SeenRuntime


@dataclass(frozen=True)
class ActualEnvironment:
    """What runs in one environment, as the backend reports it."""

    replicas: Sequence[ReplicaStatus] = ()
    services: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    gateway: ReplicaStatus | None = None
    observability: Mapping[str, Any] | None = None  # alerts, tracing, logs, as last pushed
    costs: Mapping[str, Any] | None = None  # prices, as last pushed (None: an older agent)


def seen_runtime(actual: ActualEnvironment) -> SeenRuntime:
    """The digest and a one-line summary of ``actual``; pure."""
    body = {
        "replicas": sorted(_replica(r) for r in actual.replicas),
        "gateway": _gateway(actual.gateway),
        "services": actual.services,
        "observability": actual.observability,
        "costs": actual.costs,
    }
    text = json.dumps(body, sort_keys=True, default=str)
    return SeenRuntime(digest=hashlib.sha256(text.encode()).hexdigest(), summary=_summary(actual))


def _replica(replica: ReplicaStatus) -> tuple[str, str, bool]:
    return (replica.replica_id, replica.runtime_hash, replica.state is ReplicaState.STOPPED)


def _gateway(gateway: ReplicaStatus | None) -> dict[str, Any] | None:
    if gateway is None:
        return None
    return {"id": gateway.replica_id, "config": gateway.config}


def _summary(actual: ActualEnvironment) -> str:
    parts = []
    if actual.replicas:
        count = len(actual.replicas)
        parts.append(f"{count} replica{'s' if count != 1 else ''}")
    if actual.gateway is not None:
        parts.append("the gateway")
    return " and ".join(parts) if parts else "nothing running"
