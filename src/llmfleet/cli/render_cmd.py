"""``llmfleet render``: the manifests a cluster (or docker compose) would run, as files.

For teams whose GitOps tool (Argo CD, Flux) does the applying. Reads the spec
only: no state, no cluster, no network.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from llmfleet.backends.kubernetes.documents import to_yaml, to_yaml_stream
from llmfleet.cli.output import console, errors
from llmfleet.errors import FleetError

render_app = typer.Typer(
    help="Write the manifests of an environment for another tool to apply.", no_args_is_help=True
)
SpecFile = Annotated[Path, typer.Option("--file", "-f", help="the fleet spec")]
Env = Annotated[str, typer.Option("--env", "-e", help="environment to render")]


def _context(spec_file: Path, env: str, apis: list[str] | None) -> Any:
    from llmfleet.backends.kubernetes.context import OPTIONAL_APIS, RenderContext
    from llmfleet.spec.loading import load_spec

    resolved = load_spec(spec_file).resolved
    if env not in resolved.environments:
        raise FleetError(
            f"no environment '{env}' in {spec_file}",
            hint=f"environments: {', '.join(sorted(resolved.environments))}",
        )
    unknown = sorted(set(apis or ()) - OPTIONAL_APIS)
    if unknown:
        raise FleetError(
            f"unknown optional API {', '.join(unknown)}",
            hint=f"known: {', '.join(sorted(OPTIONAL_APIS))}",
        )
    return RenderContext(
        fleet=resolved.name, environment=resolved.environment(env), apis=frozenset(apis or ())
    )


@render_app.command("kubernetes")
def kubernetes(
    spec_file: SpecFile = Path("fleet.yaml"),
    env: Env = "production",
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="folder: one file per object")
    ] = None,
    api: Annotated[
        list[str] | None,
        typer.Option(help="an optional API the cluster serves, GROUP/VERSION/KIND (repeat)"),
    ] = None,
) -> None:
    """Kubernetes manifests of an environment, in apply order (stdout or a folder)."""
    from llmfleet.backends.kubernetes.render import (
        agent_secret_hints,
        engine_key_secrets,
        render_environment,
    )

    ctx = _context(spec_file, env, api)
    objects = render_environment(ctx)
    if out is None:
        typer.echo(to_yaml_stream(objects), nl=False)
    else:
        out.mkdir(parents=True, exist_ok=True)
        for index, manifest in enumerate(objects, start=1):
            name = f"{index:02d}-{manifest['kind'].lower()}-{manifest['metadata']['name']}.yaml"
            (out / name).write_text(to_yaml(manifest))
        console.print(f"wrote {len(objects)} objects to {out}")
    secrets = " ".join(engine_key_secrets(ctx))
    errors.print(
        f"[dim]engines read their API key from Secrets not rendered here ({secrets}, key "
        f"api-key, namespace {ctx.namespace}); create each once, e.g. kubectl create secret "
        "generic NAME --from-literal=api-key=$(openssl rand -hex 32)[/]",
        highlight=False,
    )
    for line in agent_secret_hints(ctx):
        errors.print(f"[dim]{line}[/]", highlight=False)


@render_app.command("compose")
def compose(
    spec_file: SpecFile = Path("fleet.yaml"),
    env: Env = "production",
    out: Annotated[Path | None, typer.Option("--out", "-o", help="the compose file")] = None,
) -> None:
    """A docker-compose file running the same containers (stdout or a file)."""
    from llmfleet.backends.kubernetes.compose import render_compose

    text = to_yaml(render_compose(_context(spec_file, env, None)))
    if out is None:
        typer.echo(text, nl=False)
    else:
        out.write_text(text)
        console.print(f"wrote {out}")
