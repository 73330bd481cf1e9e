"""Rolling replacement of a service's replicas within its ``rollout`` bounds.

``rollout.max_surge`` and ``rollout.max_unavailable`` mean here what they mean on
Kubernetes: at most ``max_surge`` replicas above the count, at most
``max_unavailable`` below it. The replicas are replaced in batches of
``max_surge + max_unavailable``: in each, ``max_unavailable`` old replicas are
drained first, every new one is started and waited for together, then the rest
of the old ones are drained. The defaults (surge 1, unavailable 0) replace one by
one, new before old; ``max_surge: 2`` on two replicas replaces both at once.

When a surge replica finds no free GPU beside the old ones (the machine is
full), its old replica is drained first and it takes that one's GPUs: a full
machine goes one by one. Rollback applies a recorded revision through the same
code, with that revision's bounds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from llmfleet.apply.prepare import Prepared, replica_spec
from llmfleet.backends.local.client import LocalBackend
from llmfleet.errors import FleetError, GpuShortageError
from llmfleet.plan.model import Action, Op, Plan, Target
from llmfleet.spec.placement import Rollout

if TYPE_CHECKING:
    from llmfleet.apply.executor import ApplyContext

READY_TIMEOUT_S = 300.0
DRAIN_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class Batch:
    """Replicas replaced together; the first ``drain_first`` of them old-first."""

    size: int
    drain_first: int


def plan_batches(count: int, rollout: Rollout) -> list[Batch]:
    """How ``count`` replicas are replaced within ``rollout``'s bounds; pure."""
    surge, unavailable = rollout.max_surge or 0, rollout.max_unavailable or 0
    step = max(1, surge + unavailable)
    batches, left = [], count
    while left > 0:
        size = min(left, step)
        batches.append(Batch(size, min(unavailable, size)))
        left -= size
    return batches


def replace_replicas(
    runtime: LocalBackend, plan: Plan, prepared: dict[str, Prepared], ctx: ApplyContext
) -> None:
    """Replace each service's changed replicas, batch by batch; see the module doc."""
    by_service: dict[str, list[Action]] = {}
    for action in plan.actions:
        if action.op is Op.REPLACE and action.target is Target.REPLICA and action.service:
            by_service.setdefault(action.service, []).append(action)
    for name, actions in by_service.items():
        rollout = prepared[name].service.rollout
        done = 0
        for batch in plan_batches(len(actions), rollout):
            _replace_batch(runtime, plan, prepared, ctx, actions[done : done + batch.size], batch)
            done += batch.size


def _replace_batch(
    runtime: LocalBackend,
    plan: Plan,
    prepared: dict[str, Prepared],
    ctx: ApplyContext,
    actions: Sequence[Action],
    batch: Batch,
) -> None:
    drained: dict[str, str] = {}  # old replica id -> why it went before its successor
    for action in actions[: batch.drain_first]:
        assert action.replica_id is not None
        ctx.progress(f"-/+ {action.address}: draining {action.replica_id} first (max_unavailable)")
        _stop(runtime, action)
        drained[action.replica_id] = "first (max_unavailable)"
    started = []
    for action in actions:
        assert action.service is not None and action.slot is not None and action.replica_id
        spec = replica_spec(plan.environment, action.slot, prepared[action.service])
        ctx.progress(f"-/+ {action.address}: starting {spec.replica_id}")
        try:
            runtime.start_replica(spec)
        except GpuShortageError:
            if action.replica_id in drained:
                raise
            ctx.progress(
                f"-/+ {action.address}: no free GPU beside {action.replica_id}: "
                "draining it first, the new replica takes its GPUs"
            )
            _stop(runtime, action)
            drained[action.replica_id] = "to free its GPUs"
            runtime.start_replica(spec)
        started.append(spec.replica_id)
    _await_batch(runtime, started, drained)
    for action in actions:
        assert action.replica_id is not None
        if action.replica_id not in drained:
            ctx.progress(f"-/+ {action.address}: draining {action.replica_id}")
            _stop(runtime, action)
        ctx.done.append(f"-/+ {action.address}")


def _await_batch(runtime: LocalBackend, started: list[str], drained: dict[str, str]) -> None:
    """Wait for the batch's new replicas; on a failure stop those not ready and say
    which old ones are gone (and how to get them back) and that the rest still serve."""
    try:
        runtime.wait_ready(started, timeout_s=READY_TIMEOUT_S)
    except FleetError as exc:
        ready = {r.replica_id for r in runtime.list_replicas() if r.state == "ready"}
        for replica_id in started:
            if replica_id not in ready:
                runtime.stop_replica(replica_id, drain_timeout_s=0)
        gone = "".join(f"\n  {old} was stopped {why}" for old, why in drained.items())
        exc.message += gone + (
            "\n  the other old replicas were kept serving; nothing else was replaced"
            + (" (`llmfleet rollback` brings back the last revision)" if drained else "")
        )
        raise


def _stop(runtime: LocalBackend, action: Action) -> None:
    assert action.replica_id is not None
    runtime.stop_replica(action.replica_id, drain_timeout_s=DRAIN_TIMEOUT_S)
