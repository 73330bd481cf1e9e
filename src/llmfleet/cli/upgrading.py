"""``upgrade status``, ``upgrade propose`` and ``upgrade tick``: the policy's commands.

``tick`` is what the local agent runs on its schedule; ``propose`` is for a CI job
(exit codes below); ``status`` shows what the scheduler knows and will do next.
"""

from __future__ import annotations

import socket
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table
from rich.text import Text

from llmfleet.cli.output import console

if TYPE_CHECKING:
    from llmfleet.releases.autoupgrade import TickResult, Upgrader
    from llmfleet.releases.context import ReleaseContext

PRODUCTION = "production"
PROPOSED_EXIT = 2
FAILED_EXIT = 3
INCONCLUSIVE_EXIT = 4
PROPOSE_EXITS = """Exit status: 0 nothing to propose (up to date, failed before, or proposed
already); 2 a proposal was written (the spec file edited, the body written); 3 a candidate
failed its build or the gate (the spec is untouched for it; the reason is in `upgrade
status`); 4 the gate could not tell; 1 an error."""

SpecFile = Annotated[Path, typer.Option("--file", "-f", help="the fleet spec")]
Services = Annotated[list[str] | None, typer.Argument(help="services (default: all)")]
DEFAULT_SPEC = Path("fleet.yaml")


def real_upgrader(ctx: ReleaseContext) -> Upgrader:
    """The scheduler's edges as they really are: the wall clock, the engine's release
    index, low-priority builds into the shared cache, the spec's webhooks."""
    from llmfleet.engines.registry import get_adapter
    from llmfleet.releases.autoupgrade import Upgrader
    from llmfleet.releases.building import build_in_background

    return Upgrader(
        ctx=ctx,
        now=lambda: datetime.now(UTC),
        versions=lambda kind: get_adapter(kind).available_versions(),
        build=lambda kind, v: _discard(
            build_in_background(kind, v, cache_dir=ctx.settings.cache_dir)
        ),
    )


def _discard(_: object) -> None:
    """The build's output is kept only when it fails (in the error it raises)."""


def _line(result: TickResult) -> Text:
    step = result.step
    text = f"{result.service}: {step.kind.value}"
    if step.version:
        text += f" {step.version}"
    text += f" - {step.reason}"
    if result.outcome:
        text += f": {result.outcome}"
    if step.until is not None:
        text += f" (until {step.until.astimezone(UTC):%Y-%m-%d %H:%M} UTC)"
    return Text(text)


def upgrade_tick(spec_file: SpecFile = DEFAULT_SPEC) -> None:
    """Carry out the spec's upgrade policies once (the local agent runs this)."""
    from llmfleet.cli.releases import release_context
    from llmfleet.releases.autoupgrade import run_tick

    with release_context(spec_file) as ctx:
        for result in run_tick(real_upgrader(ctx)):
            console.print(_line(result), highlight=False)


def upgrade_propose(
    services: Services = None,
    spec_file: SpecFile = DEFAULT_SPEC,
    body: Annotated[
        Path, typer.Option("--body", help="where the pull request's markdown body goes")
    ] = Path("upgrade-proposal.md"),
) -> None:
    """Build and validate a newer engine; on a pass, edit the spec for a pull request.

    Writes the pull request's markdown body too. Production is never changed."""
    from llmfleet.cli.releases import release_context
    from llmfleet.releases.autoupgrade import propose_upgrade
    from llmfleet.releases.candidates import pick_services

    outcomes = []
    with release_context(spec_file) as ctx:
        upgrader = real_upgrader(ctx)
        for name in pick_services(ctx.loaded.resolved.environments[PRODUCTION], services or []):
            result = propose_upgrade(upgrader, name, body=body.resolve())
            console.print(_line(result), highlight=False)
            outcomes.append(result.outcome)
    if "failed" in outcomes:
        raise typer.Exit(FAILED_EXIT)
    if "inconclusive" in outcomes:
        raise typer.Exit(INCONCLUSIVE_EXIT)
    if "proposed" in outcomes:
        console.print(f"proposal: {spec_file} edited; body in {body}")
        raise typer.Exit(PROPOSED_EXIT)


def upgrade_status(spec_file: SpecFile = DEFAULT_SPEC) -> None:
    """What each upgrade policy did, does and will do next.

    The policy, the last look, what is building, what passed or failed and why,
    the next step and when the window next opens."""
    from llmfleet.cli.releases import release_context

    with release_context(spec_file) as ctx:
        rows = _status_rows(ctx)
    if not rows:
        console.print("no production service has an `upgrades:` policy")
        return
    for title, table in rows:
        console.print(Text(title, style="bold"), highlight=False)
        console.print(table)


def _status_rows(ctx: ReleaseContext) -> list[tuple[str, Table]]:
    from llmfleet.releases import upgrade_log
    from llmfleet.releases.autoupgrade import next_step, policies
    from llmfleet.releases.scheduling import check_due, next_opening
    from llmfleet.state.locking import pid_alive

    upgrader = real_upgrader(ctx)
    now = upgrader.now()
    rows = []
    for name, policy in policies(ctx).items():
        service = ctx.loaded.resolved.environments[PRODUCTION].services[name]
        record = upgrade_log.read_record(ctx.store, name)
        table = Table(show_header=False, box=None, pad_edge=False)
        table.add_column(style="dim")
        table.add_column()
        window = policy.window
        add = table.add_row
        add("engine", f"{service.engine.kind} {service.engine.version}")
        add("policy", _describe(policy))
        newest = record.released[0] if record.released else "-"
        add("last check", f"{_when(record.last_check)}; newest release {newest}")
        add("next check", _when(check_due(policy, record, now)))
        building = upgrade_log.building(ctx.store, name)
        held = ctx.store.lock_info(f"upgrade-{name}")
        if held is not None and held.host == socket.gethostname() and not pid_alive(held.pid):
            held = None  # its process died: the next tick breaks the lock
        if building is not None:
            alive = held is not None
            again = "" if alive else " (interrupted: the next tick builds it again)"
            add("building", f"{building.version} since {building.since}{again}")
        if held is not None:
            add("running", f"{held.purpose} ({held.holder})")
        for event in upgrade_log.last_outcomes(ctx.store, name):
            add(f"event {event.id}", _outcome(event.payload, event.created_at))
        if window is not None:
            add("next window", _when(next_opening(window, now)))
        step = next_step(upgrader, name)
        add("next step", f"{step.kind.value} {step.version or ''} - {step.reason}".strip())
        rows.append((f"{name}", table))
    return rows


def _describe(policy: object) -> str:
    from llmfleet.spec.upgrades import UpgradePolicy

    assert isinstance(policy, UpgradePolicy)
    parts = [f"follow {policy.follow.value}"]
    if policy.match:
        parts.append(f"matching {policy.match!r}")
    parts.append(f"look every {policy.check_every_s / 3600:g} h")
    if policy.window is not None:
        w = policy.window
        parts.append(f"window {','.join(w.days)} {w.start}-{w.end} {w.time_zone}")
    parts.append(f"then {policy.promote.value}")
    return "; ".join(parts)


def _when(moment: datetime | None) -> str:
    if moment is None:
        return "never"
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"


def _outcome(payload: dict[str, object], at: datetime) -> str:
    if "status" in payload:  # a failed build
        return f"{_when(at)} build of {payload.get('version')} failed: {payload.get('reason')}"
    word = "promoted" if payload.get("promoted") else payload.get("outcome") or "failed"
    if payload.get("proposal"):
        word = f"proposed ({payload['proposal']})"
    text = f"{_when(at)} {payload.get('from')} -> {payload.get('to')}: {word}"
    if not payload.get("promoted") and payload.get("reason"):
        text += f"; {payload['reason']}"
    return text


def add_upgrade_commands(upgrade_app: typer.Typer) -> None:
    upgrade_app.command("propose", epilog=PROPOSE_EXITS)(upgrade_propose)
    upgrade_app.command("status")(upgrade_status)
    upgrade_app.command("tick", hidden=True)(upgrade_tick)
