"""``llmfleet keys``: API keys for the gateway, stored hashed in the state store."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from llmfleet.cli.output import console
from llmfleet.cli.workspace import Workspace

keys_app = typer.Typer(
    help="Create, list and revoke API keys for the gateway.", no_args_is_help=True
)
SpecFile = Annotated[Path, typer.Option("--file", "-f", help="the fleet spec")]


def _workspace(spec_file: Path) -> Workspace:
    return Workspace(spec_file=spec_file, environment="production")


@keys_app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="who or what uses the key")],
    service: Annotated[
        list[str] | None,
        typer.Option("--service", "-s", help="allowed service (repeat); all if none"),
    ] = None,
    rpm: Annotated[int | None, typer.Option(help="requests per minute")] = None,
    tpm: Annotated[int | None, typer.Option(help="tokens per minute")] = None,
    spec_file: SpecFile = Path("fleet.yaml"),
) -> None:
    """Create a key; the secret is printed once and only its hash is stored."""
    ws = _workspace(spec_file)
    try:
        for svc in service or []:
            ws.service(svc)
        key, secret = ws.store.create_key(name=name, services=service or [], rpm=rpm, tpm=tpm)
    finally:
        ws.close()
    console.print(Text(f"created key {key.id} ({key.prefix}…) for {name}"))
    console.print("secret (shown once, store it now):", style="bold")
    typer.echo(secret)


@keys_app.command("list")
def list_keys(spec_file: SpecFile = Path("fleet.yaml")) -> None:
    """Every key with its scope and limits; never a secret."""
    ws = _workspace(spec_file)
    try:
        keys = ws.store.list_keys()
    finally:
        ws.close()
    table = Table(title="API keys", title_justify="left")
    for column in ("id", "name", "prefix", "services", "rpm", "tpm", "created", "state"):
        table.add_column(column)
    for key in keys:
        table.add_row(
            str(key.id),
            Text(key.name),
            Text(key.prefix),
            Text(", ".join(key.services) or "(all)"),
            str(key.rpm or "-"),
            str(key.tpm or "-"),
            key.created_at.strftime("%Y-%m-%d %H:%M"),
            "active" if key.active else "revoked",
        )
    console.print(table)


@keys_app.command("revoke")
def revoke(
    key: Annotated[str, typer.Argument(help="key id, prefix or name")],
    spec_file: SpecFile = Path("fleet.yaml"),
) -> None:
    """Revoke a key; gateways refuse it within seconds (their key cache lives 10 s)."""
    ws = _workspace(spec_file)
    try:
        revoked = ws.store.revoke_key(int(key) if key.isdigit() else key)
    finally:
        ws.close()
    console.print(Text(f"revoked key {revoked.id} ({revoked.name})"))
