"""Release commands: validate, promote, rollback, upgrade, bench; thin over ``releases``."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from llmfleet.cli.output import console
from llmfleet.cli.workspace import Workspace
from llmfleet.errors import FleetError

if TYPE_CHECKING:  # the release machinery (numpy, aiohttp) loads only when a command runs
    from llmfleet.releases.context import ReleaseContext
    from llmfleet.spec.model import ResolvedEnvironment
    from llmfleet.state.records import Event
    from llmfleet.validate.assess import ServiceReport
    from llmfleet.validate.stats import LoadSummary

PRODUCTION = "production"
INCONCLUSIVE_EXIT = 4
"""`validate`'s exit status when the gate could not tell (3 is a failed gate)"""

SpecFile = Annotated[Path, typer.Option("--file", "-f", help="the fleet spec")]
Services = Annotated[list[str] | None, typer.Argument(help="services (default: all)")]
DEFAULT_SPEC = Path("fleet.yaml")
upgrade_app = typer.Typer(help="Newer engine versions: list them, or upgrade through the gate.")


def _progress(line: str) -> None:
    """A progress line, printed as text: service names and figures are never markup."""
    console.print(Text(f"  {line}", style="dim"), highlight=False)


@contextmanager
def release_context(spec_file: Path) -> Iterator[ReleaseContext]:
    """The release machinery over this spec's workspace. It writes into the runtime's
    home (validation reports hold prompts, answers and key names): under umask 077,
    so those files are this user's only like the rest of the home, whatever the
    user's umask."""
    from llmfleet.releases.context import ReleaseContext

    ws = Workspace(spec_file=spec_file, environment=PRODUCTION)
    umask = os.umask(0o077)
    try:
        yield ReleaseContext(
            loaded=ws.loaded,
            store=ws.store,
            backend_for=ws.fleet_for,
            settings=ws.settings,
            spec_dir=ws.spec_dir,
            user=ws.settings.user,
            progress=_progress,
        )
    finally:
        os.umask(umask)
        ws.close()


def validate(
    services: Services = None,
    spec_file: SpecFile = DEFAULT_SPEC,
    keep: Annotated[bool, typer.Option("--keep", help="leave staging running")] = False,
) -> None:
    """Deploy the candidate to staging, run the suites against it and production, judge."""
    from llmfleet.releases.validation import run_validation

    with release_context(spec_file) as ctx:
        result = run_validation(ctx, services or [], keep=keep)
    from llmfleet.validate.gate import Outcome

    for report in result.services:
        render_report(console, report)
    console.print(f"report: {result.html_path}\n        {result.json_path}")
    if result.outcome is Outcome.FAIL:
        console.print("[bold red]validation FAILED[/]: production is untouched")
        raise typer.Exit(3)
    if result.outcome is Outcome.INCONCLUSIVE:
        console.print(
            "[bold yellow]validation INCONCLUSIVE[/]: the speed figures are too few or too "
            "noisy to tell a pass from a fail; production is untouched. Run longer "
            "(validation.speed.duration_s or rounds) and validate again."
        )
        raise typer.Exit(INCONCLUSIVE_EXIT)
    console.print(
        f"[bold green]validation passed[/] (candidate revision {result.candidate_serial});"
        " next: [bold]llmfleet promote[/]"
    )


def promote(
    services: Services = None,
    spec_file: SpecFile = DEFAULT_SPEC,
    force: Annotated[bool, typer.Option(help="promote without a passing validation")] = False,
    reason: Annotated[str, typer.Option(help="recorded with the promotion")] = "",
) -> None:
    """Apply a validated candidate to production (rolling, no dropped requests)."""
    from llmfleet.releases.promotion import promote as run_promote

    with release_context(spec_file) as ctx:
        done = run_promote(ctx, services or [], force=force, reason=reason)
    what = ", ".join(done.services) or "nothing changed"
    forced = " [yellow](forced)[/]" if done.forced else ""
    serial = done.revision.serial if done.revision else "-"
    console.print(f"[green]promoted[/] {what}{forced}: revision {serial} of production")


def rollback(
    spec_file: SpecFile = DEFAULT_SPEC,
    to: Annotated[int | None, typer.Option("--to", help="revision serial to restore")] = None,
    reason: Annotated[str, typer.Option(help="why; recorded")] = "",
) -> None:
    """Put production back to an earlier revision (the previous one by default)."""
    from llmfleet.releases.rollback import rollback as run_rollback

    with release_context(spec_file) as ctx:
        done = run_rollback(ctx, to=to, reason=reason)
    console.print(
        f"[green]rolled back[/] production to revision {done.restored.serial} in "
        f"{done.seconds:.1f} s (revision {done.revision.serial}); the spec file still "
        "says otherwise: `llmfleet plan` shows the difference"
    )


@upgrade_app.command("check")
def upgrade_check(spec_file: SpecFile = DEFAULT_SPEC) -> None:
    """List newer versions of each production service's engine."""
    from llmfleet.releases.upgrade import check_upgrades

    with release_context(spec_file) as ctx:
        found = check_upgrades(ctx)
    table = Table(title="Engine versions", title_justify="left")
    for column in ("service", "engine", "current", "newer"):
        table.add_column(column)
    for item in found:
        newer = ", ".join(item.newer[:5]) + (" ..." if len(item.newer) > 5 else "")
        table.add_row(item.service, item.engine, item.current, newer or "[green]up to date[/]")
    console.print(table)


@upgrade_app.command("run")
def upgrade_run(
    services: Services = None,
    spec_file: SpecFile = DEFAULT_SPEC,
    to: Annotated[str | None, typer.Option("--to", help="version (default: newest)")] = None,
) -> None:
    """Validate each service on a newer engine; promote and edit the spec if it passes."""
    from llmfleet.releases.candidates import pick_services
    from llmfleet.releases.upgrade import run_upgrade
    from llmfleet.spec.loading import load_spec

    failed = False
    with release_context(spec_file) as ctx:
        for name in pick_services(ctx.loaded.resolved.environments[PRODUCTION], services or []):
            result = run_upgrade(ctx, name, to=to)
            if result is None:
                console.print(f"{name}: already on the newest version")
                continue
            for report in result.validation.services:
                render_report(console, report)
            if result.promoted:
                console.print(
                    f"[green]upgraded[/] {name} {result.old} -> {result.new}; "
                    f"edited {result.edited}"
                )
            else:
                failed = True
                console.print(
                    f"[red]upgrade of {name} to {result.new} failed the gate[/]; "
                    f"production is untouched; report: {result.validation.html_path}"
                )
            ctx = ctx.with_loaded(load_spec(ctx.loaded.path))  # the file may have changed
    if failed:
        raise typer.Exit(3)


def bench(
    service: Annotated[str, typer.Argument(help="service (model) name")],
    spec_file: SpecFile = DEFAULT_SPEC,
    env: Annotated[str, typer.Option("--env", "-e")] = PRODUCTION,
    concurrency: Annotated[str, typer.Option(help="closed-loop levels, e.g. 1,4,8")] = "1,4",
    rate: Annotated[float | None, typer.Option(help="open-loop requests per second")] = None,
    duration: Annotated[float, typer.Option(help="seconds per level")] = 10.0,
    max_tokens: Annotated[int, typer.Option()] = 64,
    prompt: Annotated[str, typer.Option()] = "Write a short story about a lighthouse keeper.",
) -> None:
    """Load a running service through its gateway and report latency and throughput."""
    from llmfleet.spec.validation import SpeedSuiteSpec
    from llmfleet.validate.runner import measure_speed

    levels = tuple(int(x) for x in concurrency.split(",") if x.strip())
    suite = SpeedSuiteSpec(
        concurrency=levels,
        rate=rate,
        duration_s=duration,
        rounds=1,
        max_tokens=max_tokens,
        prompt=prompt,
    )
    with release_context(spec_file) as ctx:
        environment = ctx.loaded.resolved.environments.get(env)
        if environment is None or service not in environment.services:
            raise FleetError(f"no service {service!r} in environment {env}")
        url = (
            ctx.backend_for(env).gateway_url_from_here(environment)
            if environment.backend.kind == "kubernetes"  # the local runtime is not started
            else f"http://{environment.gateway.host}:{environment.gateway.port}"
        )
        import asyncio

        _progress(
            f"loading {service} through {url}: concurrency {concurrency}, {duration:g} s each"
        )
        results = asyncio.run(
            measure_speed({env: url}, model=service, suite=suite, progress=_progress)
        )
        render_speed(console, {env: results[env]})
        _record_bench(ctx, environment, service, results[env])


def _record_bench(
    ctx: ReleaseContext,
    environment: ResolvedEnvironment,
    service: str,
    levels: dict[str, LoadSummary],
) -> None:
    """Keep the bench in the state: `llmfleet costs` prices tokens with it."""
    from llmfleet.costs.gather import record_speed, running_services

    running = running_services(ctx.store, environment)
    if service not in running.services or running.serial is None:
        console.print(f"[yellow]not recorded[/]: {service} is not applied in {environment.name}")
        return
    rows = record_speed(
        ctx.store,
        levels,
        environment=environment.name,
        service=service,
        spec=running.services[service],
        serial=running.serial,
        source="bench",
        user=ctx.user,
    )
    ids = ", ".join(str(m.id) for m in rows)
    console.print(
        f"recorded as measurement(s) {ids} of revision {running.serial}; "
        f"`llmfleet costs -e {environment.name}` prices {service}'s tokens with them"
    )


def render_speed(out: Console, sides: dict[str, dict[str, LoadSummary]]) -> None:
    table = Table(title="Speed", title_justify="left")
    for column in (
        "side",
        "level",
        "reqs",
        "errors",
        "TTFT p50/p95/p99 ms",
        "ITL p50/p95 ms",
        "e2e p50/p95/p99 ms",
        "tok/s [95% interval]",
        "req/s",
    ):
        table.add_column(column)
    for side, levels in sides.items():
        for label, s in levels.items():
            table.add_row(
                side,
                label,
                str(s.requests),
                str(s.errors),
                _ms(s.ttft.p50, s.ttft.p95, s.ttft.p99),
                _ms(s.itl.p50, s.itl.p95),
                _ms(s.e2e.p50, s.e2e.p95, s.e2e.p99),
                Text(_throughput(s)),
                f"{s.requests_per_s:.2f}",
            )
    out.print(table)


def _throughput(summary: LoadSummary) -> str:
    """Output tokens per second with its bootstrap interval over rounds and answers."""
    from llmfleet.validate.intervals import Metric, interval_of

    found = interval_of(Metric.THROUGHPUT, summary.rounds)
    if found.point != found.point or found.low != found.low:
        return f"{summary.output_tokens_per_s:.1f}"
    return f"{found.point:.1f} [{found.low:.1f}, {found.high:.1f}]"


def _ms(*values: float) -> str:
    return "/".join("-" if v != v else f"{v * 1000:.0f}" for v in values)


OUTCOME_STYLES = {"pass": "green", "fail": "red", "inconclusive": "yellow"}


def render_report(out: Console, report: ServiceReport) -> None:
    outcome = report.outcome.value
    verdict = Text(outcome.upper(), style=f"bold {OUTCOME_STYLES[outcome]}")
    out.print(Text(f"{report.service}: ") + verdict)
    for change in report.changes:
        out.print(
            Text(f"  changes {change.field}: {change.production} -> {change.candidate}"),
            highlight=False,
        )
    table = Table(show_header=True)
    for column in ("check", "verdict", "observed vs limit"):
        table.add_column(column)
    for v in report.verdicts:
        word = v.outcome.value
        shown = word if v.passed else word.upper()
        table.add_row(v.check, Text(shown, style=OUTCOME_STYLES[word]), Text(v.detail))
    out.print(table)
    for case in report.candidate_quality:
        if not case.passed:
            out.print(
                f"  [red]case {case.name}[/]: {'; '.join(case.failures)}; answer: "
                f"{case.answer[:120]!r}",
                highlight=False,
            )
    for warning in report.warnings:
        out.print(f"  [yellow]warning:[/] {warning}")
    if report.candidate_speed:
        render_speed(
            out, {"production": report.production_speed, "candidate": report.candidate_speed}
        )


def render_events(out: Console, events: Sequence[Event]) -> None:
    """Validations, promotions, rollbacks and upgrades, newest first."""
    table = Table(title="Releases", title_justify="left")
    for column in ("id", "kind", "env", "serial", "when (UTC)", "user", "details"):
        table.add_column(column)
    for e in events:
        table.add_row(
            str(e.id),
            e.kind,
            e.environment,
            str(e.serial or "-"),
            e.created_at.strftime("%Y-%m-%d %H:%M:%S"),
            e.user,
            _details(e),
        )
    out.print(table)


def _details(event: Event) -> str:
    p = event.payload
    if event.kind == "validation":
        return ", ".join(
            f"{n}: {'pass' if s.get('passed') else 'FAIL'}"
            for n, s in p.get("services", {}).items()
        )
    if event.kind == "promotion":
        return f"{', '.join(p.get('services', []))}" + (
            " forced: " + p.get("reason", "") if p.get("forced") else ""
        )
    if event.kind == "rollback":
        return f"to revision {p.get('to')} in {p.get('seconds')} s {p.get('reason', '')}".strip()
    if event.kind == "upgrade":
        state = "promoted" if p.get("promoted") else "failed the gate"
        return f"{p.get('service')} {p.get('from')} -> {p.get('to')}: {state}"
    return ", ".join(f"{k}={v}" for k, v in p.items())[:80]


RELEASE_KINDS = ("validation", "promotion", "rollback", "upgrade")


def register(app: typer.Typer) -> None:
    """Add the release commands to the main app."""
    app.command()(validate)
    app.command()(promote)
    app.command()(rollback)
    app.command()(bench)
    from llmfleet.cli.upgrading import add_upgrade_commands

    add_upgrade_commands(upgrade_app)
    app.add_typer(upgrade_app, name="upgrade")
