"""``llmfleet state``: the way back from a lost or damaged state database.

The store keeps the last snapshots of a SQLite state beside it (see
``llmfleet.state.snapshots``); ``state restore`` lists them and puts one back. It
does not open the state through the store first: a lost state is exactly what the
store refuses to open. SQLAlchemy and the store are imported inside the commands,
so the CLI's other commands do not pay for them.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from llmfleet.cli.output import console
from llmfleet.cli.workspace import Workspace
from llmfleet.errors import FleetError, StateError

if TYPE_CHECKING:
    from llmfleet.state.snapshots import Shelf

state_app = typer.Typer(
    help="The state database: its snapshots, and restoring one.", no_args_is_help=True
)

SpecFile = Annotated[Path, typer.Option("--file", "-f", help="the fleet spec")]


def _database(ws: Workspace) -> Path:
    """The SQLite file of the spec's state; PostgreSQL is pointed at its own backups."""
    from llmfleet.state.connection import resolve_target

    target = resolve_target(
        ws.loaded.resolved.state, base_dir=ws.spec_dir, busy_timeout_s=10, connect_timeout_s=5
    )
    if target.sqlite_path is None and target.is_sqlite:
        raise FleetError("an in-memory state has nothing to restore")
    if target.sqlite_path is None:
        raise FleetError(
            f"the state is in PostgreSQL ({target.display}): llmfleet keeps snapshots of "
            "SQLite states only",
            hint="restore it from the server's own backups (pg_restore of a pg_dump, or "
            "point-in-time recovery), then run `llmfleet plan`",
        )
    return target.sqlite_path


def _condition(ws: Workspace) -> tuple[str, int | None]:
    """What the state is now, in words, and its latest serial when it is readable."""
    from llmfleet.state.store import StateStore

    try:
        with StateStore.open(ws.loaded.resolved.state, base_dir=ws.spec_dir) as store:
            latest = store.revisions(limit=1)
    except StateError as exc:
        return f"unusable: {exc.message}", None
    serial = latest[0].serial if latest else 0
    return f"readable, at serial {serial}", serial


def _list(shelf: Shelf, condition: str) -> None:
    table = Table(title=f"Snapshots in {shelf.folder}", title_justify="left")
    for column in ("serial", "taken (UTC)", "size"):
        table.add_column(column, justify="right" if column != "taken (UTC)" else "left")
    for snapshot in reversed(shelf.snapshots()):
        when = snapshot.taken_at.strftime("%Y-%m-%d %H:%M:%S")
        table.add_row(str(snapshot.serial), when, f"{snapshot.size / 1024:.0f} KiB")
    console.print(table)
    console.print(f"the state now: {condition}", highlight=False, markup=False)


@state_app.command()
def restore(
    serial: Annotated[
        int | None, typer.Argument(help="the serial to bring back (default: the latest)")
    ] = None,
    spec_file: SpecFile = Path("fleet.yaml"),
    list_only: Annotated[
        bool, typer.Option("--list", help="list the snapshots and what the state is now")
    ] = False,
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="replace a readable state without asking")
    ] = False,
) -> None:
    """Bring back a snapshot of the state (kept after each apply; the last 10)."""
    from llmfleet.state.snapshots import Shelf, restore_snapshot

    ws = Workspace(spec_file=spec_file, environment="production")
    database = _database(ws)
    shelf = Shelf.beside(database)
    condition, current = _condition(ws)
    if list_only:
        _list(shelf, condition)
        return
    snapshot = shelf.find(serial)
    if current is not None and not yes:
        console.print(
            f"the state {database} is {condition}; restoring replaces it with the snapshot "
            f"of serial {snapshot.serial} (the current file is kept aside)",
            highlight=False,
            markup=False,
        )
        if not typer.confirm("restore it?"):
            raise typer.Exit(1)
    done = restore_snapshot(database, serial=snapshot.serial)
    taken = done.snapshot.taken_at.isoformat(timespec="seconds")
    console.print(
        f"restored the state of serial {done.snapshot.serial} (snapshot taken {taken}) "
        f"into {database}",
        highlight=False,
        markup=False,
    )
    if done.kept_aside is not None:
        console.print(f"the file it replaced is kept as {done.kept_aside}", highlight=False)
    console.print(
        "a running gateway still has the old file open: `llmfleet down` and then "
        "`llmfleet apply` reopen it; `llmfleet plan` shows what differs from the runtime",
        highlight=False,
        markup=False,
    )
