"""The ``llmfleet`` command: thin typer commands over the layers below.

Every command turns a ``FleetError`` into its message and exit code; a user's
mistake never prints a traceback.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from llmfleet.cli import render
from llmfleet.cli.output import console, errors, plain
from llmfleet.cli.workspace import Workspace
from llmfleet.errors import FleetError

app = typer.Typer(
    name="llmfleet",
    help="Infrastructure as code for fleets of self-hosted LLM services.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

SpecFile = Annotated[Path, typer.Option("--file", "-f", help="the fleet spec")]
Env = Annotated[str, typer.Option("--env", "-e", help="environment to act on")]
Yes = Annotated[bool, typer.Option("--yes", "-y", help="do not ask for confirmation")]
AsJson = Annotated[
    bool, typer.Option("--json", help="print a JSON document (fields: README, JSON output)")
]
DEFAULT_SPEC = Path("fleet.yaml")


@contextmanager
def workspace(spec_file: Path, environment: str) -> Iterator[Workspace]:
    ws = Workspace(spec_file=spec_file, environment=environment)
    try:
        yield ws
    finally:
        ws.close()


def _progress(line: str) -> None:
    console.print(Text(f"  {line}", style="dim"))


@app.command()
def init(
    path: Annotated[Path, typer.Argument(help="where to write the spec")] = DEFAULT_SPEC,
    force: Annotated[bool, typer.Option(help="overwrite an existing file")] = False,
    spec_file: Annotated[
        Path | None, typer.Option("--file", "-f", help="where to write the spec (as PATH)")
    ] = None,
) -> None:
    """Write a commented example fleet.yaml."""
    from llmfleet.spec.examples import init_template

    path = spec_file or path

    if path.exists() and not force:
        raise FleetError(f"{path} already exists", hint="use --force to overwrite it")
    path.write_text(init_template())
    console.print(f"wrote {plain(path)}; next: [bold]llmfleet check -f {plain(path)}[/]")


def _version(value: bool) -> None:
    if value:
        from llmfleet import __version__

        typer.echo(f"llmfleet {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="print the version"),
    ] = False,
) -> None:
    """Infrastructure as code for fleets of self-hosted LLM services."""


@app.command()
def check(spec_file: SpecFile = DEFAULT_SPEC, as_json: AsJson = False) -> None:
    """Validate a spec: resolve templates and environments, report every problem."""
    if as_json:
        _check_json(spec_file)
        return
    from llmfleet.cli.engine_versions import check_pinned_versions
    from llmfleet.cli.suite_checks import check_suites

    with workspace(spec_file, "production") as ws:
        resolved = ws.loaded.resolved
        render.render_spec_warnings(errors, ws.loaded.warnings)
        check_pinned_versions(ws)
        check_suites(ws)
    from llmfleet.cli.json_views import gateway_place

    for name, env in sorted(resolved.environments.items()):
        replicas = sum(s.replicas for s in env.services.values())
        console.print(
            f"[green]ok[/] {plain(name)}: {len(env.services)} services, {replicas} replicas, "
            f"{plain(gateway_place(resolved.name, env)[0])}"
        )


def _check_json(spec_file: Path) -> None:
    """``check --json``: the problems go to stdout as data too (exit 2), for editors and CI."""
    from llmfleet.cli.engine_versions import pinned_report
    from llmfleet.cli.json_views import check_document, dumps
    from llmfleet.errors import SpecError

    with workspace(spec_file, "production") as ws:
        try:
            loaded = ws.loaded
            pinned = pinned_report(ws)
        except SpecError as exc:
            sys.stdout.write(dumps(check_document(None, problems=exc.problems)))
            raise typer.Exit(exc.exit_code) from exc
    warnings = [*loaded.warnings, *pinned.warnings]
    document = check_document(
        loaded.resolved, problems=pinned.problems, warnings=warnings, notes=pinned.notes
    )
    sys.stdout.write(dumps(document))
    if pinned.problems:
        raise typer.Exit(SpecError(pinned.problems).exit_code)


@app.command()
def schema(
    spec_file: Annotated[
        Path | None, typer.Option("--file", "-f", help="accepted like everywhere; not read")
    ] = None,
) -> None:
    """Print the JSON Schema of the spec (for editors' autocompletion)."""
    from llmfleet.spec.schema import fleet_json_schema

    sys.stdout.write(json.dumps(fleet_json_schema(), indent=2) + "\n")


@app.command()
def plan(
    spec_file: SpecFile = DEFAULT_SPEC,
    env: Env = "production",
    detailed_exitcode: Annotated[
        bool, typer.Option("--detailed-exitcode", help="exit 0 no changes, 2 changes, 1 error")
    ] = False,
    out: Annotated[Path | None, typer.Option(help="save the plan for `apply PLANFILE`")] = None,
    as_json: AsJson = False,
) -> None:
    """Show what apply would change: + create, ~ update, -/+ replace, - delete."""
    from llmfleet.cli.applying import current_plan
    from llmfleet.cli.costs import render_plan_costs
    from llmfleet.cli.engine_versions import check_pinned_versions

    with workspace(spec_file, env) as ws:
        render.render_spec_warnings(errors, ws.loaded.warnings)
        check_pinned_versions(ws, environments=[env])
        the_plan = current_plan(ws)
        if as_json:
            from llmfleet.cli.json_views import dumps, plan_document

            sys.stdout.write(dumps(plan_document(the_plan)))
        else:
            render.render_plan(console, the_plan)
            render_plan_costs(console, ws, the_plan, ws.actual())
            if ws.loaded.spec.indexes:  # the RAG path imports httpx and LanceDB
                from llmfleet.cli.ingesting import render_index_changes

                render_index_changes(console, ws)
        if out is not None:
            out.write_text(json.dumps(the_plan.to_json(), indent=2))
            (errors if as_json else console).print(
                f"saved to {plain(out)}; run [bold]llmfleet apply {plain(out)}[/]"
            )
    if detailed_exitcode and the_plan.has_changes:
        raise typer.Exit(2)


@app.command()
def apply(
    plan_file: Annotated[Path | None, typer.Argument(help="a plan saved by `plan --out`")] = None,
    spec_file: SpecFile = DEFAULT_SPEC,
    env: Env = "production",
    yes: Yes = False,
    message: Annotated[
        str, typer.Option("--message", "-m", help="recorded with the revision")
    ] = "",
    force_conflicts: Annotated[
        bool,
        typer.Option(
            "--force-conflicts",
            help="on a cluster: take fields other field managers own (an autoscaler's replicas)",
        ),
    ] = False,
) -> None:
    """Make the running fleet match the spec, and record the revision."""
    from llmfleet.cli.applying import run_apply

    with workspace(spec_file, env) as ws:
        run_apply(
            ws,
            console=console,
            plan_file=plan_file,
            yes=yes,
            message=message,
            progress=_progress,
            force_conflicts=force_conflicts,
        )


@app.command()
def fetch(
    spec_file: SpecFile = DEFAULT_SPEC,
    verify: Annotated[
        bool, typer.Option(help="re-hash cached models even if they look untouched")
    ] = False,
) -> None:
    """Install every engine version and fetch every model the spec names, without applying."""
    from llmfleet.apply.prepare import prepare_service
    from llmfleet.cli.engine_versions import check_pinned_versions
    from llmfleet.errors import EngineUnavailableError

    with workspace(spec_file, "production") as ws:
        check_pinned_versions(ws)  # a version never released: refused here, not by pip
        seen: set[str] = set()
        for env in ws.loaded.resolved.environments.values():
            for name, service in sorted(env.services.items()):
                key = service.model_dump_json(include={"engine", "model"})
                if key in seen:
                    continue
                seen.add(key)
                try:
                    prepare_service(
                        name,
                        service,
                        settings=ws.settings,
                        store=ws.store,
                        spec_dir=ws.spec_dir,
                        progress=_progress,
                        verify_model=verify,
                    )
                except EngineUnavailableError as exc:
                    errors.print(f"[yellow]skipped[/] {plain(name)}: {plain(exc.message)}")
        console.print(
            f"[green]ready[/]: {len(seen)} engine and model combination(s) cached in "
            f"{plain(ws.settings.cache_dir)}"
        )


@app.command()
def status(
    spec_file: SpecFile = DEFAULT_SPEC,
    env: Annotated[str | None, typer.Option("--env", "-e", help="only this environment")] = None,
    as_json: AsJson = False,
) -> None:
    """Services and replicas: pid, port, state, uptime, restarts; a cluster's pods with
    their node and why one is not ready. Every environment of the spec unless -e."""
    from llmfleet.cli.status import show_status

    with workspace(spec_file, env or "production") as ws:
        show_status(console, ws, env=env, as_json=as_json)


@app.command()
def logs(
    service: Annotated[str, typer.Argument(help="service name, or 'gateway'")],
    spec_file: SpecFile = DEFAULT_SPEC,
    env: Env = "production",
    lines: Annotated[int, typer.Option("--lines", "-n")] = 50,
    raw: Annotated[bool, typer.Option("--raw", help="JSON log lines as written")] = False,
) -> None:
    """The last lines of every replica of a service (or of the gateway), also of those
    that crashed or were stopped."""
    from llmfleet.cli.failures import logs_to_show, show_logs
    from llmfleet.observe.log_lines import read_log_line

    def render_line(line: str) -> Text:
        entry = None if raw else read_log_line(line)
        return Text(line) if entry is None else render.log_line_text(entry)

    with workspace(spec_file, env) as ws:
        if ws.fleet.kind == "kubernetes":
            from llmfleet.cli.cluster import show_cluster_logs

            show_cluster_logs(console, ws.fleet, service, lines=lines, raw=raw)
            return
        show_logs(console, logs_to_show(ws, service), lines=lines, render_line=render_line)


@app.command()
def ask(
    service: Annotated[str, typer.Argument(help="a service or an agent of the spec")],
    prompt: Annotated[str, typer.Argument(help="what to ask")],
    spec_file: SpecFile = DEFAULT_SPEC,
    env: Env = "production",
    max_tokens: Annotated[int, typer.Option(help="longest answer in tokens")] = 256,
    temperature: Annotated[float, typer.Option()] = 0.0,
    api_key: Annotated[
        str | None, typer.Option(envvar="LLMFLEET_API_KEY", help="if the service needs one")
    ] = None,
) -> None:
    """Send one chat request to a service or an agent through the gateway; stream the answer."""
    from llmfleet.cli.asking import stream_answer

    with workspace(spec_file, env) as ws:
        ws.service(service)
        from llmfleet.cli.failures import command_line

        stream_answer(
            ws.gateway_url_from_here(ws.environment),
            service=service,
            prompt=prompt,
            max_tokens=max_tokens,
            temperature=temperature,
            api_key=api_key,
            console=console,
            unready_hint=(
                f"`{command_line(ws, 'status')}` shows its replicas and "
                f"`{command_line(ws, f'logs {service}')}` their output"
            ),
        )


@app.command()
def ingest(
    pipeline: Annotated[str, typer.Argument(help="a pipeline of the spec's pipelines:")],
    spec_file: SpecFile = DEFAULT_SPEC,
    env: Env = "production",
    rebuild: Annotated[
        bool,
        typer.Option(help="empty the index and embed everything again (plan shows when needed)"),
    ] = False,
    api_key: Annotated[
        str | None, typer.Option(envvar="LLMFLEET_API_KEY", help="if the service needs one")
    ] = None,
    as_json: AsJson = False,
) -> None:
    """Bring a pipeline's documents into its index: new and changed embedded, deleted removed."""
    from llmfleet.cli.ingesting import render_report, reports_dir, run_ingest

    with workspace(spec_file, env) as ws:
        report = run_ingest(
            ws, pipeline, rebuild=rebuild, api_key=api_key, console=errors if as_json else console
        )
        if as_json:
            sys.stdout.write(json.dumps(report.to_json(), indent=2) + "\n")
        else:
            log = reports_dir(ws.settings.home, ws.environment) / f"{pipeline}.log"
            render_report(console, report, log)


@app.command()
def history(
    spec_file: SpecFile = DEFAULT_SPEC,
    env: Annotated[str | None, typer.Option("--env", "-e", help="only this environment")] = None,
    limit: Annotated[int, typer.Option("--limit", "-n")] = 20,
    as_json: AsJson = False,
) -> None:
    """Recorded revisions: applies, destroys, rollbacks, with their outcome."""
    with workspace(spec_file, env or "production") as ws:
        revisions = ws.store.revisions(env, limit=limit)
        from llmfleet.cli.releases import RELEASE_KINDS, render_events

        events = [e for e in ws.store.events(limit=limit * 4, environment=env)
                  if e.kind in RELEASE_KINDS][:limit]  # fmt: skip
        if as_json:
            from llmfleet.cli.json_views import dumps, history_document

            sys.stdout.write(dumps(history_document(revisions, events)))
            return
        render.render_history(console, revisions)
        if events:
            render_events(console, events)


@app.command()
def destroy(spec_file: SpecFile = DEFAULT_SPEC, env: Env = "production", yes: Yes = False) -> None:
    """Stop every replica and the gateway of an environment and forget its services."""
    from llmfleet.cli.applying import run_destroy

    with workspace(spec_file, env) as ws:
        run_destroy(ws, console=console, yes=yes, progress=_progress)


@app.command()
def down(spec_file: SpecFile = DEFAULT_SPEC) -> None:
    """Stop the local runtime: every replica and gateway, and the agent. State is kept.
    Environments on a cluster are not touched (`destroy -e ENV` removes one)."""
    with workspace(spec_file, "production") as ws:
        if ws.backend.shutdown():
            console.print("stopped the local runtime; `llmfleet apply` starts it again")
        else:
            console.print("the local runtime was not running")
        envs = ws.loaded.resolved.environments.values()
        if any(e.backend.kind == "kubernetes" for e in envs):
            from llmfleet.cli.cluster import untouched_clusters

            console.print(Text(untouched_clusters(ws)))


@app.command()
def unlock(
    spec_file: SpecFile = DEFAULT_SPEC,
    yes: Yes = False,
    force: Annotated[
        bool, typer.Option("--force", help="break a lock held from another host")
    ] = False,
) -> None:
    """Break the state lock left by a command that died (never one still running here)."""
    with workspace(spec_file, "production") as ws:
        info = ws.store.lock_info("apply")
        if info is None and ws.store.settled is not None:
            console.print(Text(f"unlocked: {ws.store.settled.error}"))
            return
        if info is None:
            console.print("the state is not locked")
            return
        console.print(Text(f"locked by {info.describe()}"))
        refusal = ws.store.refusal_to_break(info, force=force)
        if refusal is not None:
            raise refusal
        if not yes and not typer.confirm("break this lock?"):
            raise typer.Exit(1)
        broken = ws.store.break_lock("apply", force=force)
        here = info.host == ws.store.host
        why = "its process no longer runs" if here else "it ran on another host"
        console.print(Text(f"unlocked ({why})" if broken else "the lock was released meanwhile"))


from llmfleet.cli.keys import keys_app  # noqa: E402 - registered after the core commands

app.add_typer(keys_app, name="keys")
from llmfleet.cli.state import state_app  # noqa: E402 - same reason

app.add_typer(state_app, name="state")
from llmfleet.cli.observe import register_observe  # noqa: E402 - same reason

register_observe(app)

from llmfleet.cli.releases import register as register_releases  # noqa: E402

register_releases(app)

from llmfleet.cli.render_cmd import render_app  # noqa: E402 - same reason

app.add_typer(render_app, name="render")

from llmfleet.cli.costs import costs  # noqa: E402 - same reason

app.command()(costs)

from llmfleet.cli.engine_versions import versions  # noqa: E402 - same reason

app.command()(versions)


def main() -> None:
    """Entry point: run the app, turning our errors into messages and exit codes."""
    try:
        code = typer.main.get_group(app)(standalone_mode=False, prog_name="llmfleet")
    except FleetError as exc:
        errors.print(Text("error: ", style="bold red") + Text(exc.message))
        if exc.hint:
            errors.print(Text("  hint: ", style="dim") + Text(exc.hint))
        sys.exit(_error_exit(exc.exit_code))
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        errors.print("aborted")
        sys.exit(1)
    except KeyboardInterrupt:
        errors.print("interrupted")
        sys.exit(130)
    except Exception as exc:  # click's own usage errors: usage, a bad option
        show = getattr(exc, "show", None)
        if isinstance(exc, _usage_errors()) and callable(show):
            show()
            sys.exit(_error_exit(getattr(exc, "exit_code", 2)))
        raise
    sys.exit(code if isinstance(code, int) else 0)


def _error_exit(code: int) -> int:
    """An error's exit code; with ``plan --detailed-exitcode`` every error exits 1 (a spec
    mistake or a usage error included, which otherwise exit 2): 2 means changes there."""
    return 1 if "--detailed-exitcode" in sys.argv[1:] else code


def _usage_errors() -> tuple[type[Exception], ...]:
    """Click's exception base: click's own, or (typer >= 0.29) typer's vendored copy."""
    import click

    return (click.ClickException, getattr(typer, "TyperException", click.ClickException))
