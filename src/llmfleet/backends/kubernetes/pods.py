"""What every pod llmfleet renders shares: a locked-down security context,
probes from an engine's ``Probe``, container resources; pure."""

from __future__ import annotations

import math
from typing import Any

from llmfleet.backends.kubernetes.context import NON_ROOT_ID
from llmfleet.backends.kubernetes.gpus import GPU_RESOURCE
from llmfleet.engines.base import Probe
from llmfleet.spec.resources import Resources

STARTUP_PERIOD_S = 10
READY_PERIOD_S = 5
LIVE_PERIOD_S = 10
LIVE_FAILURES = 6
"""A minute of failed health checks before a restart: a replica busy with a long
prefill may answer its health check late, and a restart loses every stream."""
TMP_VOLUME = "tmp"


def pod_security() -> dict[str, Any]:
    """Not root, the runtime's default seccomp profile; ``fsGroup`` so volumes are writable."""
    return {
        "runAsNonRoot": True,
        "runAsUser": NON_ROOT_ID,
        "runAsGroup": NON_ROOT_ID,
        "fsGroup": NON_ROOT_ID,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_security() -> dict[str, Any]:
    """No privilege escalation, no capabilities, a read-only root (``/tmp`` is a volume)."""
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }


def http_get(probe: Probe, port: str) -> dict[str, Any]:
    """An engine's GET check as a kubelet probe; a POST check cannot be one (see workloads)."""
    return {
        "httpGet": {"path": probe.path, "port": port},
        "timeoutSeconds": max(1, math.ceil(probe.timeout_s)),
    }


def startup_probe(probe: Probe, port: str, *, budget_s: float) -> dict[str, Any]:
    """Passes once the model is loaded; until then liveness is off, so loading is never
    killed. Its failures times its period is at least the spec's startup budget."""
    failures = max(1, math.ceil(budget_s / STARTUP_PERIOD_S))
    return {
        **http_get(probe, port),
        "periodSeconds": STARTUP_PERIOD_S,
        "failureThreshold": failures,
    }


def startup_window_s(budget_s: float) -> int:
    """How long the startup probe really allows (whole periods)."""
    return max(1, math.ceil(budget_s / STARTUP_PERIOD_S)) * STARTUP_PERIOD_S


def readiness_probe(probe: Probe, port: str) -> dict[str, Any]:
    return {**http_get(probe, port), "periodSeconds": READY_PERIOD_S, "failureThreshold": 3}


def liveness_probe(probe: Probe, port: str) -> dict[str, Any]:
    return {
        **http_get(probe, port),
        "periodSeconds": LIVE_PERIOD_S,
        "failureThreshold": LIVE_FAILURES,
    }


def container_resources(resources: Resources) -> dict[str, Any]:
    """Requests as the spec says; memory limited (an OOM kills one pod, not the node);
    CPU not limited (throttling a busy engine only slows every stream); GPUs whole."""
    requests: dict[str, Any] = {"cpu": _cpu(resources.cpus), "memory": resources.memory}
    limits: dict[str, Any] = {"memory": resources.memory}
    if resources.gpus:
        requests[GPU_RESOURCE] = str(resources.gpus)
        limits[GPU_RESOURCE] = str(resources.gpus)
    return {"requests": requests, "limits": limits}


def _cpu(cpus: float) -> str:
    millis = round(cpus * 1000)
    return str(millis // 1000) if millis % 1000 == 0 else f"{millis}m"


def tmp_volume() -> dict[str, Any]:
    return {"name": TMP_VOLUME, "emptyDir": {}}


def tmp_mount() -> dict[str, Any]:
    return {"name": TMP_VOLUME, "mountPath": "/tmp"}  # noqa: S108 - a pod's own emptyDir
