"""Which GPUs each local replica may use: its own, named in ``CUDA_VISIBLE_DEVICES``.

A replica whose service asks for ``resources.gpus: N`` gets N GPUs that no other
replica of this agent holds, as ``CUDA_VISIBLE_DEVICES`` (NVML's numbering, so
``CUDA_DEVICE_ORDER=PCI_BUS_ID`` too) in its environment. The assignment lives in
the replica's spec, so the agent's saved table keeps it across an agent restart,
and a GPU fault takes out of routing only the replicas on that GPU
(``observe.local.replica_gpus``). A spec that already names its devices is left
as it is: the operator chose them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from llmfleet.backends.base import ReplicaSpec
from llmfleet.errors import GpuShortageError

VISIBLE = "CUDA_VISIBLE_DEVICES"


def wanted_gpus(spec: ReplicaSpec) -> int:
    """How many GPUs the replica's service asks for."""
    resources = spec.config.get("resources") or {}
    return int(resources.get("gpus") or 0)


def held_gpus(spec: ReplicaSpec) -> set[str]:
    """The devices a replica's environment names (empty when it names none)."""
    visible = spec.launch.env.get(VISIBLE, "")
    return {device.strip() for device in visible.split(",") if device.strip()}


def assign_gpus(spec: ReplicaSpec, others: Iterable[ReplicaSpec], *, count: int) -> ReplicaSpec:
    """``spec`` with GPUs of its own among ``count`` on this machine; ``others`` are the
    replicas already running. Raises ``GpuShortageError`` when too few are free.

    On a machine without GPUs nothing is assigned: an engine that needs one has
    refused the service already (``check_runnable``), and the sim ignores them."""
    wanted = wanted_gpus(spec)
    if wanted == 0 or count == 0 or held_gpus(spec):
        return spec
    holders: dict[str, str] = {}
    for other in others:
        for device in held_gpus(other):
            holders[device] = other.replica_id
    free = [str(index) for index in range(count) if str(index) not in holders]
    if len(free) < wanted:
        held = ", ".join(f"GPU {d}: {r}" for d, r in sorted(holders.items())) or "none"
        raise GpuShortageError(
            f"replica {spec.replica_id} needs {wanted} GPU(s); this machine has {count}, "
            f"{len(free)} free (held: {held})",
            hint="lower replicas or resources.gpus, or stop another service first",
        )
    env = {**spec.launch.env, VISIBLE: ",".join(free[:wanted]), "CUDA_DEVICE_ORDER": "PCI_BUS_ID"}
    return replace(spec, launch=replace(spec.launch, env=env))
