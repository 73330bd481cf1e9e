"""``llmfleet promote``: a validated candidate to production, through the gate's record.

``check_promotion`` is the pure decision: every service that would change must
have a passing validation of exactly its current spec. The promotion itself is
an apply of production (rolling, create-before-destroy, so no request is
dropped), recorded as kind ``promote`` plus a ``promotion`` event.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from llmfleet.errors import ReleaseError
from llmfleet.releases.candidates import changed_services, merged_environment, pick_services
from llmfleet.releases.context import PRODUCTION, STAGING, ReleaseContext, apply_environment
from llmfleet.state.records import Event, Revision


@dataclass(frozen=True)
class Promotion:
    revision: Revision | None
    services: tuple[str, ...]
    forced: bool


def check_promotion(changed: Mapping[str, str], validations: Sequence[Event]) -> list[str]:
    """Why each changed service may not be promoted (empty: all may); pure.

    ``validations`` are ``validation`` events, newest first.
    """
    problems = []
    for name, wanted in changed.items():
        latest = next((e for e in validations if name in e.payload.get("services", {})), None)
        if latest is None:
            problems.append(f"{name}: never validated")
            continue
        record = latest.payload["services"][name]
        if record.get("candidate_hash") != wanted:
            problems.append(
                f"{name}: the spec changed since its validation "
                f"(event {latest.id}, candidate revision {latest.serial})"
            )
        elif not record.get("passed"):
            failed = ", ".join(record.get("failed_checks", [])) or "see the report"
            problems.append(f"{name}: failed its validation (event {latest.id}): {failed}")
    return problems


def promote(
    ctx: ReleaseContext, names: Sequence[str], *, force: bool = False, reason: str = ""
) -> Promotion:
    """Apply the validated services to production; refuse unless the gate's record allows."""
    if force and not reason.strip():
        raise ReleaseError("--force needs --reason: an override is recorded with its reason")
    desired_all = ctx.loaded.resolved.environments[PRODUCTION]
    chosen = pick_services(desired_all, names)
    latest = ctx.store.latest_revision(PRODUCTION)
    recorded = latest.spec if latest else None
    desired = merged_environment(desired_all, recorded, chosen) if names else desired_all
    changed = {n: h for n, h in changed_services(desired, recorded).items() if n in chosen}
    problems = check_promotion(
        changed, ctx.store.events("validation", limit=200, environment=STAGING)
    )
    if problems and not force:
        raise ReleaseError(
            "promote refused:\n  " + "\n  ".join(problems),
            hint="run `llmfleet validate` first, or --force --reason '...'",
        )
    message = f"forced: {reason}" if problems else (reason or "validated candidate")
    revision = apply_environment(ctx, desired, kind="promote", message=message)
    ctx.store.record_event(
        kind="promotion",
        environment=PRODUCTION,
        serial=revision.serial,
        user=ctx.user,
        payload={
            "services": sorted(changed),
            "forced": bool(problems),
            "reason": reason,
            "overridden": problems,
        },
    )
    return Promotion(revision, tuple(sorted(changed)), bool(problems))
