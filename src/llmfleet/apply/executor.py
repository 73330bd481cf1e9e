"""Carry out a Plan on a backend; the only writer of state.

Order: gateway config (in-place updates) first, then new replicas, then rolling
replacements (create-before-destroy: the new replica is ready before the old one
is drained and stopped, so a service never has zero ready replicas), then deletes,
then the gateway. A replacement whose new replica fails keeps the old one serving
and stops the apply. The revision, with the plan and its outcome, is written in
one transaction at the end, whether the apply succeeded or failed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmfleet.apply.actual import actual_environment
from llmfleet.apply.prepare import Prepared, prepare_service, replica_spec
from llmfleet.backends.local.client import LocalBackend
from llmfleet.engines.base import Progress
from llmfleet.engines.registry import get_adapter
from llmfleet.errors import ApplyError, FleetError, GpuShortageError, StalePlanError
from llmfleet.plan.model import Action, Op, Plan, Target
from llmfleet.plan.seen import ActualEnvironment, seen_runtime
from llmfleet.settings import Settings
from llmfleet.spec.model import ResolvedEnvironment
from llmfleet.state.records import Outcome, Revision, RevisionKind
from llmfleet.state.store import StateStore

READY_TIMEOUT_S = 300.0
DRAIN_TIMEOUT_S = 60.0
SECRET_KEY = re.compile(r"token|secret|password|passwd|key|credential", re.IGNORECASE)


@dataclass
class ApplyContext:
    """What one apply works with; built by the CLI (or a test) and passed in."""

    backend: LocalBackend
    store: StateStore
    settings: Settings
    spec_dir: Path
    state_url: str
    user: str
    message: str = ""
    kind: RevisionKind = "apply"
    parent_serial: int | None = None
    progress: Progress = field(default=lambda line: None)
    done: list[str] = field(default_factory=list)


def apply_plan(plan: Plan, desired: ResolvedEnvironment, ctx: ApplyContext) -> Revision:
    """Execute ``plan`` under the state lock and record the revision; see module doc."""
    with ctx.store.lock("apply", purpose=f"{ctx.kind} {plan.environment}") as held:
        current = ctx.store.current_serial(plan.environment)
        if current != plan.serial:
            raise StalePlanError(
                f"the plan was made from state serial {plan.serial} but the state is now at "
                f"{current}",
                hint="run `llmfleet plan` again",
            )
        check_runtime_unchanged(plan, actual_environment(ctx.backend, plan.environment))
        if plan.has_changes:
            ctx.store.note_apply_started(
                held, environment=plan.environment, kind=ctx.kind, user=ctx.user,
                message=ctx.message, spec_hash=plan.spec_hash, plan=plan.to_json(),
            )  # fmt: skip
        try:
            _execute(plan, desired, ctx)
        except FleetError as exc:
            _record(plan, desired, ctx, outcome="failed", error=str(exc))
            raise ApplyError(exc.message, done=ctx.done, hint=exc.hint) from exc
        return _record(plan, desired, ctx, outcome="success", error=None)


def check_runtime_unchanged(plan: Plan, actual: ActualEnvironment) -> None:
    """Refuse ``plan`` when what runs is not what it was made against (a `down`, a
    replica gone): its actions were chosen for processes that may no longer exist,
    and carrying them out would record a success over a runtime nobody planned."""
    if plan.seen is None:
        return
    now = seen_runtime(actual)
    if now.digest != plan.seen.digest:
        raise StalePlanError(
            f"what runs in {plan.environment} changed since the plan was made: it saw "
            f"{plan.seen.summary}, now {now.summary}",
            hint="run `llmfleet plan` again (`--out FILE` to save it) and apply that plan",
        )


def _record(
    plan: Plan,
    desired: ResolvedEnvironment,
    ctx: ApplyContext,
    *,
    outcome: Outcome,
    error: str | None,
) -> Revision:
    return ctx.store.record_revision(
        environment=plan.environment,
        kind=ctx.kind,
        user=ctx.user,
        message=ctx.message,
        spec_hash=plan.spec_hash,
        spec=redact(desired.model_dump(mode="json")),
        plan=plan.to_json(),
        outcome=outcome,
        error=error,
        parent_serial=ctx.parent_serial,
        expected_serial=plan.serial,
    )


def redact(value: Any) -> Any:
    """The spec as recorded: values of secret-looking keys (engine env tokens) masked."""
    if isinstance(value, dict):
        return {
            k: ("***" if SECRET_KEY.search(k) and isinstance(v, str) else redact(v))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


def _execute(plan: Plan, desired: ResolvedEnvironment, ctx: ApplyContext) -> None:
    if not plan.has_changes:
        return
    ctx.backend.ensure_agent()
    prepared = _prepare_all(plan, desired, ctx)
    _push_service_config(plan, desired, ctx)
    # New replicas spawn first (an engine takes longest to load), the gateway alongside,
    # then both are waited for: neither waits for the other to start.
    started = _start_new_replicas(plan, prepared, ctx)
    _start_gateway(plan, desired, ctx)
    _await_new_replicas(started, ctx)
    _replace_replicas(plan, prepared, ctx)
    for action in _actions(plan, Op.DELETE, Target.REPLICA):
        assert action.replica_id is not None
        ctx.progress(f"- {action.address}: draining {action.replica_id}")
        ctx.backend.stop_replica(action.replica_id, drain_timeout_s=DRAIN_TIMEOUT_S)
        ctx.done.append(f"- {action.address}")
    _finish_gateway(plan, ctx)
    if not desired.services:
        ctx.backend.forget_environment(plan.environment)


def _actions(plan: Plan, op: Op, target: Target) -> list[Action]:
    return [a for a in plan.actions if a.op is op and a.target is target]


def _prepare_all(
    plan: Plan, desired: ResolvedEnvironment, ctx: ApplyContext
) -> dict[str, Prepared]:
    names = {
        a.service
        for a in plan.actions
        if a.target is Target.REPLICA and a.op in (Op.CREATE, Op.REPLACE) and a.service
    }
    return {
        name: prepare_service(
            name,
            desired.services[name],
            settings=ctx.settings,
            store=ctx.store,
            spec_dir=ctx.spec_dir,
            progress=ctx.progress,
        )
        for name in sorted(names)
    }


def _push_service_config(plan: Plan, desired: ResolvedEnvironment, ctx: ApplyContext) -> None:
    """Tell the gateway the services' settings; this is what in-place updates change."""
    services = {name: svc.model_dump(mode="json") for name, svc in desired.services.items()}
    continuation = {
        name: dict(get_adapter(svc.engine.kind).continuation_fields())
        for name, svc in desired.services.items()
    }
    ctx.backend.set_environment_config(
        plan.environment,
        services=services,
        continuation=continuation,
        observability=desired.observability.model_dump(mode="json"),
        costs=desired.costs.model_dump(mode="json"),
    )
    ctx.done.extend(f"~ {a.address}" for a in _actions(plan, Op.UPDATE, Target.SERVICE))
    ctx.done.extend(f"~ {a.address}" for a in _actions(plan, Op.UPDATE, Target.OBSERVABILITY))
    ctx.done.extend(f"~ {a.address}" for a in _actions(plan, Op.UPDATE, Target.COSTS))


def _start_new_replicas(
    plan: Plan, prepared: dict[str, Prepared], ctx: ApplyContext
) -> list[tuple[Action, str]]:
    started: list[tuple[Action, str]] = []
    for action in _actions(plan, Op.CREATE, Target.REPLICA):
        assert action.service is not None and action.slot is not None
        spec = replica_spec(plan.environment, action.slot, prepared[action.service])
        try:
            ctx.backend.start_replica(spec)
        except FleetError:
            _stop_unready(ctx, [rid for _, rid in started])
            raise
        started.append((action, spec.replica_id))
        ctx.progress(f"+ {action.address}: starting {spec.replica_id}")
    return started


def _await_new_replicas(started: list[tuple[Action, str]], ctx: ApplyContext) -> None:
    if not started:
        return
    try:
        ctx.backend.wait_ready([rid for _, rid in started], timeout_s=READY_TIMEOUT_S)
    except FleetError:
        _stop_unready(ctx, [rid for _, rid in started])
        raise
    ctx.done.extend(f"+ {action.address}" for action, _ in started)


def _stop_unready(ctx: ApplyContext, replica_ids: list[str]) -> None:
    """Stop new replicas that never became ready (a crash loop would burn the CPU)."""
    ready = {r.replica_id for r in ctx.backend.list_replicas() if r.state == "ready"}
    for replica_id in replica_ids:
        if replica_id not in ready:
            ctx.backend.stop_replica(replica_id, drain_timeout_s=0)


def _replace_replicas(plan: Plan, prepared: dict[str, Prepared], ctx: ApplyContext) -> None:
    """Rolling, one replica at a time: new one ready, then the old one drained.

    When the machine has no free GPUs for the new replica beside the old one, the
    old one is drained first and the new one takes its GPUs (one replica less
    while it starts), rather than the update being refused."""
    for action in _actions(plan, Op.REPLACE, Target.REPLICA):
        assert action.service is not None and action.slot is not None and action.replica_id
        spec = replica_spec(plan.environment, action.slot, prepared[action.service])
        ctx.progress(f"-/+ {action.address}: starting {spec.replica_id}")
        in_place = False
        try:
            ctx.backend.start_replica(spec)
        except GpuShortageError:
            ctx.progress(
                f"-/+ {action.address}: no free GPU beside {action.replica_id}: "
                "draining it first, the new replica takes its GPUs"
            )
            ctx.backend.stop_replica(action.replica_id, drain_timeout_s=DRAIN_TIMEOUT_S)
            in_place = True
            ctx.backend.start_replica(spec)
        try:
            ctx.backend.wait_ready([spec.replica_id], timeout_s=READY_TIMEOUT_S)
        except FleetError as exc:
            ctx.backend.stop_replica(spec.replica_id, drain_timeout_s=0)
            exc.message += (
                f"\n  {action.replica_id} was stopped to free its GPUs; nothing else was "
                "replaced (`llmfleet rollback` brings back the last revision)"
                if in_place
                else f"\n  {action.replica_id} was kept serving; nothing else was replaced"
            )
            raise
        if not in_place:
            ctx.progress(f"-/+ {action.address}: draining {action.replica_id}")
            ctx.backend.stop_replica(action.replica_id, drain_timeout_s=DRAIN_TIMEOUT_S)
        ctx.done.append(f"-/+ {action.address}")


def _start_gateway(plan: Plan, desired: ResolvedEnvironment, ctx: ApplyContext) -> None:
    wanted = [a for a in plan.actions if a.target is Target.GATEWAY and a.op is not Op.DELETE]
    if not wanted:
        return
    gateway = desired.gateway
    ctx.progress(f"gateway: listening on http://{gateway.host}:{gateway.port}")
    ctx.backend.run_gateway(
        plan.environment,
        host=gateway.host,
        port=gateway.port,
        state_url=ctx.state_url,
        state_base_dir=str(ctx.spec_dir),
    )


def _finish_gateway(plan: Plan, ctx: ApplyContext) -> None:
    """Stop a deleted gateway, or wait until a started one answers."""
    if _actions(plan, Op.DELETE, Target.GATEWAY):
        ctx.backend.stop_gateway(plan.environment)
        ctx.done.append("- gateway")
    elif [a for a in plan.actions if a.target is Target.GATEWAY]:
        ctx.backend.wait_gateway(plan.environment, timeout_s=30.0)
        ctx.done.append("+ gateway")
