"""``llmfleet rollback``: production back to an earlier recorded revision, fast.

No validation (rollback is a person's decision) and no rebuild: each engine
version has its own cache folder and models are cached by checksum, so the
earlier revision's replicas start like any restart. The revision's recorded
spec is planned against what runs and applied as kind ``rollback`` with
``parent_serial`` naming the revision restored.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from llmfleet.errors import ReleaseError, StateError
from llmfleet.releases.candidates import restore_secrets
from llmfleet.releases.context import PRODUCTION, ReleaseContext, apply_environment
from llmfleet.spec.model import ResolvedEnvironment
from llmfleet.state.records import Revision


@dataclass(frozen=True)
class Rollback:
    revision: Revision
    restored: Revision
    seconds: float


def pick_rollback_target(history: Sequence[Revision], to: int | None) -> Revision:
    """The revision to restore: ``to``, or the last one before the current spec; pure.

    ``history`` is the environment's revisions, newest first.
    """
    good = [r for r in history if r.outcome == "success" and r.kind != "destroy"]
    if not good:
        raise ReleaseError("production has no recorded revision to roll back to")
    if to is not None:
        for revision in good:
            if revision.serial == to:
                return revision
        serials = ", ".join(str(r.serial) for r in good[:10])
        raise ReleaseError(
            f"revision {to} is not a successful production revision",
            hint=f"recent production revisions: {serials}",
        )
    current = good[0]
    for revision in good[1:]:
        if revision.spec != current.spec:
            return revision
    raise ReleaseError(
        "production has no earlier revision that differs from the current one",
        hint="see `llmfleet history`",
    )


def rollback(ctx: ReleaseContext, *, to: int | None = None, reason: str = "") -> Rollback:
    """Restore revision ``to`` (default: the previous one) in production; see module doc."""
    started = time.monotonic()
    if to is not None:
        try:
            ctx.store.get_revision(to)
        except StateError as exc:
            raise ReleaseError(
                f"cannot roll back to revision {to}: {exc.message}", hint="see `llmfleet history`"
            ) from exc
    target = pick_rollback_target(ctx.store.revisions(PRODUCTION, limit=500), to)
    current_spec = ctx.loaded.resolved.environments[PRODUCTION]
    desired = ResolvedEnvironment.model_validate(restore_secrets(target.spec, current_spec))
    message = f"rollback to {target.serial}" + (f": {reason}" if reason else "")
    revision = apply_environment(
        ctx,
        desired,
        kind="rollback",
        message=message,
        parent_serial=target.serial,
        spec_hash=target.spec_hash,
    )
    seconds = time.monotonic() - started
    ctx.store.record_event(
        kind="rollback",
        environment=PRODUCTION,
        serial=revision.serial,
        user=ctx.user,
        payload={"to": target.serial, "reason": reason, "seconds": round(seconds, 3)},
    )
    return Rollback(revision, target, seconds)
