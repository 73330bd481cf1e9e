"""Engine versions in the CLI: the pinned-version check of ``check``, ``plan``, ``apply``
and ``fetch``, and ``llmfleet versions``, a listing that fits on a screen."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.text import Text

from llmfleet.cli.output import console, errors
from llmfleet.cli.render import render_spec_warnings
from llmfleet.cli.workspace import Workspace
from llmfleet.errors import EngineError, SpecError, SpecProblem

if TYPE_CHECKING:
    from llmfleet.engines.listing import ListingCache
    from llmfleet.spec.problems import Finding

NEWEST_SHOWN = 5


@dataclass(frozen=True)
class PinnedReport:
    """The pinned-version check, placed in the spec file."""

    problems: list[SpecProblem]
    warnings: list[SpecProblem]
    notes: list[SpecProblem]


def pinned_report(ws: Workspace, *, environments: Iterable[str] | None = None) -> PinnedReport:
    """Look up every engine version the spec (or ``environments`` of it) pins."""
    from llmfleet.engines.listing import ListingCache
    from llmfleet.engines.pinning import pin_findings, survey_versions
    from llmfleet.spec.locations import place_findings

    loaded = ws.loaded
    envs = loaded.resolved.environments
    if environments is not None:
        envs = {name: envs[name] for name in environments if name in envs}
    pins = survey_versions(envs, cache=ListingCache(ws.settings.cache_dir))
    found = pin_findings(loaded.spec, pins)
    filename = str(loaded.path)

    def place(findings: list[Finding]) -> list[SpecProblem]:
        return place_findings(findings, loaded.locations, filename=filename)

    return PinnedReport(place(found.problems), place(found.warnings), place(found.notes))


def check_pinned_versions(
    ws: Workspace, *, environments: Iterable[str] | None = None, out: Console = errors
) -> None:
    """Refuse versions that were never released (``SpecError``, at their lines), before
    anything is built; say which versions could not be checked and which apply builds."""
    report = pinned_report(ws, environments=environments)
    if report.problems:
        raise SpecError(report.problems)
    render_spec_warnings(out, report.warnings)
    render_notes(out, report.notes)


def render_notes(out: Console, notes: Iterable[SpecProblem]) -> None:
    for note in notes:
        out.print(Text("note: ", style="bold cyan") + Text(note.render()))


SpecFile = Annotated[Path, typer.Option("--file", "-f", help="the fleet spec (for 'in use')")]


def versions(
    kind: Annotated[
        str | None, typer.Argument(help="engine kind (default: each one the spec uses)")
    ] = None,
    show_all: Annotated[
        bool, typer.Option("--all", help="every released version, one a line, newest first")
    ] = False,
    spec_file: SpecFile = Path("fleet.yaml"),
) -> None:
    """Released versions of an engine: the newest few, those the spec pins, and the count."""
    from llmfleet.engines.listing import ListingCache
    from llmfleet.engines.registry import get_adapter
    from llmfleet.spec.model import EngineKind

    ws = Workspace(spec_file=spec_file, environment="production")
    pins = _pins_by_kind(ws) if spec_file.exists() else {}
    kinds = [kind] if kind else sorted(pins)
    if not kinds:
        raise typer.BadParameter("name an engine kind (the spec pins none)")
    cache = ListingCache(ws.settings.cache_dir)
    for name in kinds:
        adapter = get_adapter(name)
        key = str(EngineKind(adapter.kind))
        released = _listing(cache, key, adapter.available_versions)
        if show_all:
            for version in released:
                console.print(Text(version))
            continue
        _render_summary(key, released, pins.get(key, []))


def _listing(cache: ListingCache, kind: str, ask: Callable[[], list[str]]) -> tuple[str, ...]:
    """The listing, or the last one cached (said so) when the index cannot be reached."""
    try:
        return cache.lookup(kind, wanted=None, ask=ask).versions
    except EngineError as exc:
        cached = cache.read(kind)
        if cached is None:
            raise
        when = datetime.fromtimestamp(cached.listed_at, UTC).strftime("%Y-%m-%d %H:%M UTC")
        errors.print(Text(f"warning: {exc.message}; showing the listing of {when}"))
        return cached.versions


def _pins_by_kind(ws: Workspace) -> dict[str, list[str]]:
    """Per engine kind, each pinned version as ``V (env/service, ...; installed or not)``."""
    from llmfleet.engines.registry import get_adapter

    users: dict[tuple[str, str], list[str]] = {}
    for env_name, env in sorted(ws.loaded.resolved.environments.items()):
        for name, service in sorted(env.services.items()):
            key = (str(service.engine.kind), service.engine.version)
            users.setdefault(key, []).append(f"{env_name}/{name}")
    shown: dict[str, list[str]] = {}
    for (kind, version), who in sorted(users.items()):
        installed = get_adapter(kind).installed(version, cache_dir=ws.settings.cache_dir)
        state = "installed" if installed is not None else "not installed"
        shown.setdefault(kind, []).append(f"{version} ({', '.join(who)}; {state})")
    return shown


def _render_summary(kind: str, released: tuple[str, ...], in_use: list[str]) -> None:
    lines = [
        f"{kind}: {len(released)} released",
        f"  newest: {', '.join(released[:NEWEST_SHOWN])}",
        *(f"  in use: {pin}" for pin in in_use),
        f"  all of them: llmfleet versions {kind} --all",
    ]
    for line in lines:
        console.print(Text(line))
