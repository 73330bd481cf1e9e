"""Carry out a Plan on a backend; the only writer of state.

Under the state lock: refuse a plan made from another serial or another runtime,
let the environment's ``Backend`` make the changes (replica by replica locally,
server-side apply and a rollout in a cluster: each backend's module says its
order), then write the revision, with the plan and its outcome, in one
transaction, whether the apply succeeded or failed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmfleet.backends.base import Backend
from llmfleet.engines.base import Progress
from llmfleet.errors import ApplyError, FleetError, StalePlanError
from llmfleet.plan.model import Plan, SeenRuntime
from llmfleet.settings import Settings
from llmfleet.spec.model import ResolvedEnvironment
from llmfleet.state.records import Outcome, Revision, RevisionKind
from llmfleet.state.store import StateStore

SECRET_KEY = re.compile(r"token|secret|password|passwd|key|credential", re.IGNORECASE)


@dataclass
class ApplyContext:
    """What one apply works with; built by the CLI (or a test) and passed in."""

    backend: Backend
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
    spec_file: Path | None = None
    """the spec applied; the local agent runs its upgrade policies from it"""
    force_conflicts: bool = False
    """take fields other field managers own (a cluster's autoscaler); refused otherwise"""


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
        check_runtime_unchanged(plan, ctx.backend.seen(plan.environment))
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


def check_runtime_unchanged(plan: Plan, now: SeenRuntime) -> None:
    """Refuse ``plan`` when what runs is not what it was made against (a `down`, a
    replica gone): its actions were chosen for processes that may no longer exist,
    and carrying them out would record a success over a runtime nobody planned."""
    if plan.seen is None:
        return
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
    if plan.has_changes:
        ctx.backend.carry_out(plan, desired, ctx)
