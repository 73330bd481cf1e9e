"""``apply`` and ``destroy`` as the CLI runs them: plan, show, confirm, execute."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import typer
from rich.console import Console

from llmfleet.apply.executor import ApplyContext, apply_plan, check_runtime_unchanged
from llmfleet.cli import render
from llmfleet.cli.output import errors
from llmfleet.cli.workspace import Workspace
from llmfleet.errors import ApplyError, FleetError, StalePlanError
from llmfleet.plan.model import Plan
from llmfleet.state.records import RevisionKind


def _context(
    ws: Workspace,
    *,
    message: str,
    kind: RevisionKind,
    progress: Callable[[str], None],
    force_conflicts: bool = False,
) -> ApplyContext:
    return ApplyContext(
        backend=ws.fleet,
        store=ws.store,
        settings=ws.settings,
        spec_dir=ws.spec_dir,
        spec_file=ws.spec_file,
        state_url=ws.loaded.resolved.state,
        user=ws.settings.user,
        message=message,
        kind=kind,
        progress=progress,
        force_conflicts=force_conflicts,
    )


def current_plan(ws: Workspace) -> Plan:
    latest = ws.store.latest_revision(ws.environment)
    services = latest.spec.get("services", {}) if latest else {}
    return ws.fleet.plan(
        ws.desired,
        serial=ws.store.current_serial(ws.environment),
        spec_hash=ws.loaded.resolved.spec_hash(),
        recorded_services=frozenset(services),
        recorded_replicas={name: int(s.get("replicas", 0)) for name, s in services.items()},
    )


def _saved_plan(ws: Workspace, plan_file: Path) -> Plan:
    try:
        plan = Plan.from_json(json.loads(plan_file.read_text()))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise FleetError(
            f"{plan_file} is not a plan saved by `llmfleet plan --out`: {exc}"
        ) from exc
    if plan.environment != ws.environment:
        raise FleetError(f"{plan_file} is a plan for {plan.environment}, not {ws.environment}")
    if plan.spec_hash != ws.loaded.resolved.spec_hash():
        raise StalePlanError(
            f"{ws.spec_file} changed since {plan_file} was made",
            hint="run `llmfleet plan --out` again",
        )
    if plan.seen is None:
        raise StalePlanError(
            f"{plan_file} does not record what ran when it was made (an older llmfleet)",
            hint="run `llmfleet plan --out` again",
        )
    check_runtime_unchanged(plan, ws.fleet.seen(ws.environment))
    return plan


def _unchanged(ws: Workspace, plan: Plan) -> bool:
    latest = ws.store.latest_revision(ws.environment)
    return not plan.has_changes and latest is not None and latest.spec_hash == plan.spec_hash


def run_apply(
    ws: Workspace,
    *,
    console: Console,
    plan_file: Path | None,
    yes: bool,
    message: str,
    progress: Callable[[str], None],
    force_conflicts: bool = False,
) -> None:
    from llmfleet.cli.engine_versions import check_pinned_versions

    started = time.monotonic()
    render.render_spec_warnings(errors, ws.loaded.warnings)
    check_pinned_versions(ws, environments=[ws.environment])
    ws.fleet.before_apply()
    plan = _saved_plan(ws, plan_file) if plan_file else current_plan(ws)
    render.render_plan(console, plan)
    if _unchanged(ws, plan):
        return
    if plan.has_changes and not yes and plan_file is None and not typer.confirm("Apply this plan?"):
        raise typer.Exit(1)
    try:
        revision = apply_plan(
            plan,
            ws.desired,
            _context(
                ws,
                message=message,
                kind="apply",
                progress=progress,
                force_conflicts=force_conflicts,
            ),
        )
    except ApplyError as exc:
        from llmfleet.cli.failures import with_logs_hint

        raise with_logs_hint(ws, exc) from exc.__cause__
    console.print(
        f"[green]Apply complete[/] in {time.monotonic() - started:.1f} s: "
        f"revision {revision.serial} of {ws.environment}. "
        f"Gateway: {ws.fleet.gateway_url(ws.desired)}/v1"
    )


def run_destroy(
    ws: Workspace, *, console: Console, yes: bool, progress: Callable[[str], None]
) -> None:
    plan = ws.fleet.plan_destroy(ws.environment, serial=ws.store.current_serial(ws.environment))
    render.render_plan(console, plan)
    if not yes and plan.has_changes and not typer.confirm(f"Destroy {ws.environment}?"):
        raise typer.Exit(1)
    # The environment without its services, not a default one: its observability
    # settings stay the agent's (a default metrics_port moved the endpoint to 9464).
    empty = ws.desired.model_copy(update={"services": {}})
    revision = apply_plan(
        plan, empty, _context(ws, message="destroy", kind="destroy", progress=progress)
    )
    console.print(f"[green]Destroyed[/] {ws.environment} (revision {revision.serial})")
