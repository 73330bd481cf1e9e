"""Pods as the replicas status shows: state, node, restarts and why one is not ready; pure.

A pod is ``ready`` when its Ready condition is true, ``draining`` once it is
being deleted (its preStop drain runs), ``crash-loop`` when a container waits in
CrashLoopBackOff, else ``starting`` (scheduling, pulling, fetching the model,
loading it). Why a pod is not ready (ImagePullBackOff, Insufficient
nvidia.com/gpu, OOMKilled, ...) goes in ``log_tail``, as a local replica's last
lines do; its node in ``config['node']``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from llmfleet.backends.base import ReplicaState, ReplicaStatus
from llmfleet.backends.kubernetes.labels import SERVICE
from llmfleet.backends.kubernetes.rollout import pod_reasons

Manifest = dict[str, Any]


def pod_replicas(pods: Sequence[Manifest], *, environment: str) -> list[ReplicaStatus]:
    """``pods`` (one environment's) as replicas, numbered per service by name; gateway
    pods have the service ''."""
    slots: dict[str, int] = defaultdict(int)
    replicas = []
    for pod in sorted(pods, key=lambda p: p["metadata"]["name"]):
        service = (pod["metadata"].get("labels") or {}).get(SERVICE, "")
        replicas.append(pod_replica(pod, environment=environment, slot=slots[service]))
        slots[service] += 1
    return replicas


def pod_replica(pod: Manifest, *, environment: str, slot: int) -> ReplicaStatus:
    meta, spec, status = pod["metadata"], pod.get("spec") or {}, pod.get("status") or {}
    labels = meta.get("labels") or {}
    containers = spec.get("containers") or [{}]
    ports = containers[0].get("ports") or [{}]
    statuses = status.get("containerStatuses") or []
    reasons = pod_reasons(pod) + _unscheduled(status)
    return ReplicaStatus(
        replica_id=meta["name"],
        environment=environment,
        service=labels.get(SERVICE, ""),
        slot=slot,
        runtime_hash=labels.get("pod-template-hash", ""),
        engine=containers[0].get("name", ""),
        engine_version=_image_tag(containers[0].get("image", "")),
        state=_state(meta, status),
        port=int(ports[0].get("containerPort", 0)),
        started_at=_epoch(status.get("startTime")),
        restarts=sum(int(c.get("restartCount", 0)) for c in statuses),
        log_tail=tuple(reasons),
        config={"node": spec.get("nodeName") or "-"},
        host=status.get("podIP") or "",
    )


def _state(meta: Manifest, status: Manifest) -> ReplicaState:
    if meta.get("deletionTimestamp"):
        return ReplicaState.DRAINING
    conditions = {c.get("type"): c.get("status") for c in status.get("conditions") or ()}
    if conditions.get("Ready") == "True":
        return ReplicaState.READY
    for container in status.get("containerStatuses") or ():
        waiting = (container.get("state") or {}).get("waiting") or {}
        if waiting.get("reason") == "CrashLoopBackOff":
            return ReplicaState.CRASH_LOOP
    return ReplicaState.STARTING


def _unscheduled(status: Manifest) -> list[str]:
    """The scheduler's word on a pending pod: '0/3 nodes are available: 3 Insufficient
    nvidia.com/gpu.'"""
    return [
        f"unschedulable: {c.get('message', '')}"
        for c in status.get("conditions") or ()
        if c.get("type") == "PodScheduled" and c.get("status") == "False"
    ]


def _image_tag(image: str) -> str:
    name = image.rsplit("/", 1)[-1]
    return name.split(":", 1)[1] if ":" in name else "latest"


def _epoch(stamp: str | None) -> float | None:
    if not stamp:
        return None
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
