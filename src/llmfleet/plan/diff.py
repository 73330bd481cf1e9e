"""diff(desired, actual) -> Plan; pure.

The actual side is what really runs (the backend's replicas and the config the
gateway routes by), not the last recorded state: a replica that died or was
changed by hand is drift and shows up in the plan.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

from llmfleet import __version__
from llmfleet.backends.base import ReplicaState, ReplicaStatus
from llmfleet.backends.exits import describe_exit
from llmfleet.plan.model import Action, Op, Plan, Target
from llmfleet.plan.seen import ActualEnvironment as ActualEnvironment  # callers import it here
from llmfleet.plan.seen import seen_runtime
from llmfleet.spec.model import (
    ResolvedEnvironment,
    ServiceSpec,
    in_place_fields,
    replace_fields,
)
from llmfleet.spec.spelling import leaf_changes, spelt

PREFERENCE = {
    ReplicaState.READY: 0,
    ReplicaState.UNHEALTHY: 1,
    ReplicaState.STARTING: 2,
    ReplicaState.BACKOFF: 3,
    ReplicaState.CRASH_LOOP: 4,
    ReplicaState.DRAINING: 5,
    ReplicaState.STOPPED: 6,
}


def runtime_config(service: ServiceSpec) -> dict[str, Any]:
    """The part of a service a running replica depends on (what replicas record)."""
    return service.model_dump(mode="json", include=set(replace_fields(service)))


def in_place_config(service: ServiceSpec) -> dict[str, Any]:
    """The part the gateway reads and can change without restarting replicas."""
    return service.model_dump(mode="json", include=set(in_place_fields(service)))


def field_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """Human lines ``path: old -> new`` for every leaf that differs; pure."""
    return [
        f"{path}: {spelt(before)} -> {spelt(after)}"
        for path, before, after in leaf_changes(old, new)
    ]


def plan_changes(
    desired: ResolvedEnvironment,
    actual: ActualEnvironment,
    *,
    serial: int,
    spec_hash: str,
    recorded_services: frozenset[str] = frozenset(),
    recorded_replicas: Mapping[str, int] | None = None,
) -> Plan:
    """Every action that makes ``actual`` match ``desired``; pure and deterministic.

    ``recorded_services`` and ``recorded_replicas`` (the services of the last applied
    revision, with their replica counts) only shape the reasons: a missing replica of
    a recorded service is drift, not new, and one beyond the recorded count is the
    spec's change (``replicas: 2 -> 3``), not drift.
    """
    recorded = dict(recorded_replicas or {})
    by_service: dict[str, list[ReplicaStatus]] = defaultdict(list)
    for replica in actual.replicas:
        by_service[replica.service].append(replica)
    actions: list[Action] = []
    notes: list[str] = []
    for name in sorted(desired.services):
        service = desired.services[name]
        known = name in recorded_services or name in recorded
        running = by_service.get(name, [])
        before = recorded.get(name, service.replicas)  # unknown: a missing one is drift
        actions += _replica_actions(name, service, running, notes, known=known, before=before)
        actions += _service_actions(
            name, service, actual.services.get(name), bool(by_service.get(name))
        )
    for name in sorted(set(by_service) - set(desired.services)):
        actions += [_delete(r, "service removed from the spec") for r in _ordered(by_service[name])]
    for name in sorted(set(actual.services) - set(desired.services)):
        actions.append(
            Action(
                Op.DELETE, Target.SERVICE, service=name, reasons=("service removed from the spec",)
            )
        )
    actions += _gateway_actions(desired, actual.gateway, notes)
    actions += _observability_actions(desired, actual, bool(actions))
    actions += _costs_actions(desired, actual, bool(actions))
    return Plan(desired.name, serial, spec_hash, tuple(actions), tuple(notes), seen_runtime(actual))


def _observability_actions(
    desired: ResolvedEnvironment, actual: ActualEnvironment, other_changes: bool
) -> list[Action]:
    """An in-place update when only the observability settings changed (any other change
    pushes them anyway); nothing for an environment that does not run."""
    if other_changes or (not actual.replicas and actual.gateway is None):
        return []
    wanted = desired.observability.model_dump(mode="json")
    changes = [
        # A webhook URL often carries its token (Slack, PagerDuty): never print one.
        "webhooks: changed" if line.startswith("webhooks:") else line
        for line in field_changes(actual.observability or {}, wanted)
    ]
    if not changes:
        return []
    return [Action(Op.UPDATE, Target.OBSERVABILITY, reasons=tuple(changes))]


def _costs_actions(
    desired: ResolvedEnvironment, actual: ActualEnvironment, other_changes: bool
) -> list[Action]:
    """An in-place update when only the prices changed, so the cost series follow them;
    nothing when the runtime never said which prices it has (an agent from before costs)."""
    if other_changes or actual.costs is None:
        return []
    changes = field_changes(actual.costs, desired.costs.model_dump(mode="json"))
    return [Action(Op.UPDATE, Target.COSTS, reasons=tuple(changes))] if changes else []


def _ordered(replicas: Iterable[ReplicaStatus]) -> list[ReplicaStatus]:
    return sorted(
        replicas, key=lambda r: (r.slot, PREFERENCE.get(r.state, 9), -(r.started_at or 0))
    )


def _delete(replica: ReplicaStatus, reason: str) -> Action:
    return Action(
        Op.DELETE,
        Target.REPLICA,
        service=replica.service,
        slot=replica.slot,
        replica_id=replica.replica_id,
        reasons=(reason,),
    )


def _replica_actions(
    name: str,
    service: ServiceSpec,
    running: list[ReplicaStatus],
    notes: list[str],
    *,
    known: bool,
    before: int,
) -> list[Action]:
    """``before``: how many replicas the last applied revision gave the service."""
    by_slot: dict[int, list[ReplicaStatus]] = defaultdict(list)
    for replica in _ordered(running):
        by_slot[replica.slot].append(replica)
    actions: list[Action] = []
    for slot in range(service.replicas):
        group = by_slot.pop(slot, [])
        if not (known or running):
            missing = "new replica"
        elif slot >= before:
            missing = f"replicas: {before} -> {service.replicas}"
        else:
            missing = "replica is not running (drift)"
        actions += _slot_actions(name, slot, service, group, missing=missing, notes=notes)
    slots = len({r.slot for r in running})
    for slot in sorted(by_slot):
        reason = f"replicas: {slots} -> {service.replicas}" if slot >= service.replicas else ""
        actions += [_delete(r, reason or "not in the spec") for r in by_slot[slot]]
    return actions


def _slot_actions(
    name: str,
    slot: int,
    service: ServiceSpec,
    group: list[ReplicaStatus],
    *,
    missing: str,
    notes: list[str],
) -> list[Action]:
    """The actions of one slot; ``missing`` is the reason to create an empty one."""
    if not group:
        return [Action(Op.CREATE, Target.REPLICA, service=name, slot=slot, reasons=(missing,))]
    keep, extras = group[0], group[1:]
    actions = [_delete(r, "duplicate of this slot, left by an interrupted apply") for r in extras]
    reasons: tuple[str, ...] = ()
    if keep.runtime_hash != service.runtime_hash():
        changes = field_changes(keep.config, runtime_config(service))
        reasons = tuple(changes) or ("runtime settings changed",)
    elif keep.state is ReplicaState.STOPPED:
        reasons = ("replica is stopped (drift)",)
    elif keep.state is ReplicaState.CRASH_LOOP:
        # It serves nothing, and its back-off grows to 30 s between tries: the fleet does
        # not match the spec, and a fresh start (the cause may be gone: a port, a full
        # disk, a model file) is what apply does, as Terraform replaces a tainted resource.
        reasons = (_crash_loop_reason(name, keep),)
    if reasons:
        actions.append(
            Action(
                Op.REPLACE,
                Target.REPLICA,
                service=name,
                slot=slot,
                replica_id=keep.replica_id,
                reasons=reasons,
            )
        )
    return actions


def _crash_loop_reason(name: str, replica: ReplicaStatus) -> str:
    last = describe_exit(replica.last_exit).summary if replica.last_exit is not None else ""
    return (
        f"replica is crash-looping (drift): {replica.restarts} restarts"
        + (f", last {last}" if last else "")
        + f"; start it again (see `llmfleet logs {name}`)"
    )


def _service_actions(
    name: str, service: ServiceSpec, current: Mapping[str, Any] | None, has_replicas: bool
) -> list[Action]:
    wanted = in_place_config(service)
    if current is None:
        if not has_replicas:
            return []  # a new service: its config goes out with its first replicas
        return [
            Action(Op.UPDATE, Target.SERVICE, service=name, reasons=("gateway config missing",))
        ]
    known = {key: current.get(key) for key in wanted}
    changes = field_changes(known, wanted)
    if not changes:
        return []
    return [Action(Op.UPDATE, Target.SERVICE, service=name, reasons=tuple(changes))]


def _gateway_actions(
    desired: ResolvedEnvironment, gateway: ReplicaStatus | None, notes: list[str]
) -> list[Action]:
    # The version too: a gateway of an older llmfleet may not read the new config.
    wanted = {"host": desired.gateway.host, "port": desired.gateway.port, "version": __version__}
    if gateway is None:
        where = f"{wanted['host']}:{wanted['port']}"
        return [Action(Op.CREATE, Target.GATEWAY, reasons=(f"listen on {where}",))]
    changes = field_changes(gateway.config, wanted)
    if changes:
        return [
            Action(
                Op.REPLACE, Target.GATEWAY, replica_id=gateway.replica_id, reasons=tuple(changes)
            )
        ]
    if gateway.state is ReplicaState.CRASH_LOOP:
        notes.append("the gateway is crash-looping; see `llmfleet logs gateway`")
    return []


def plan_destroy(environment: str, actual: ActualEnvironment, *, serial: int) -> Plan:
    """Delete every replica, service config and the gateway of ``environment``; pure."""
    reason = "destroy"
    actions = [_delete(r, reason) for r in _ordered(actual.replicas)]
    actions += [
        Action(Op.DELETE, Target.SERVICE, service=name, reasons=(reason,))
        for name in sorted(actual.services)
    ]
    if actual.gateway is not None:
        actions.append(
            Action(
                Op.DELETE, Target.GATEWAY, replica_id=actual.gateway.replica_id, reasons=(reason,)
            )
        )
    return Plan(environment, serial, "", tuple(actions), seen=seen_runtime(actual))
