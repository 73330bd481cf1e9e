"""What the CLI shows when something failed: the output of replicas that no longer
run (``logs``), replicas that failed and services with no ready replica
(``status``), and the exact command, with ``-f`` and ``-e``, that shows more.

A failed apply stops the replicas that never became ready; before, that left
``status`` an empty table beside a "ready" gateway and ``logs`` saying "no running
replica". The agent now remembers them (``backends.local.failed``) and their logs
stay on disk (``backends.local.replica_logs``).
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table
from rich.text import Text

from llmfleet.backends.base import ReplicaState, ReplicaStatus
from llmfleet.backends.local.failed import FailedReplica
from llmfleet.backends.local.layout import LOGS_FOLDER
from llmfleet.backends.local.replica_logs import (
    gateway_log,
    newest_per_slot,
    read_tail,
    service_logs,
)
from llmfleet.cli.workspace import Workspace
from llmfleet.errors import ApplyError, FleetError, ReplicaFailedError

DEFAULT_SPEC = Path("fleet.yaml")
FAILED_TAIL_LINES = 5


def command_line(ws: Workspace, words: str, *, environment: str | None = None) -> str:
    """``llmfleet WORDS -f SPEC -e ENV`` (the workspace's environment unless named),
    leaving out what is the default, so a hint can be pasted as it is."""
    parts = ["llmfleet", words]
    if ws.spec_file != DEFAULT_SPEC:
        parts += ["-f", shlex.quote(str(ws.spec_file))]
    environment = environment or ws.environment
    if environment != "production":
        parts += ["-e", shlex.quote(environment)]
    return " ".join(parts)


def with_logs_hint(ws: Workspace, exc: ApplyError) -> ApplyError:
    """``exc`` with the command that shows the whole output of the replica it is about
    (the log tail in the message is its end only)."""
    cause = exc.__cause__
    if isinstance(cause, ReplicaFailedError) and cause.service:
        more = f"`{command_line(ws, f'logs {cause.service}')}` shows its whole output"
        exc.hint = f"{exc.hint}\n  {more}" if exc.hint else more
    return exc


@dataclass(frozen=True, slots=True)
class Shown:
    """One log to show: whose, where, and a note on the process behind it."""

    replica_id: str
    path: Path
    note: str


def logs_to_show(ws: Workspace, service: str) -> list[Shown]:
    """The logs ``llmfleet logs SERVICE`` shows: the replicas that run, those that failed
    and were stopped; when there are neither, the last replica of each slot. Read from
    disk, so they show with the agent stopped too. Raises ``FleetError`` when no
    replica of it ever wrote a log here."""
    home, env = ws.settings.home, ws.environment
    backend = ws.backend
    if service == "gateway":
        shown = [
            Shown(g.replica_id, home / LOGS_FOLDER / "gateways" / f"{g.replica_id}.log",
                  _running_note(g))
            for g in backend.gateways() if g.environment == env
        ]  # fmt: skip
        old = gateway_log(home, env)
        stale = [] if old is None else [old]
    else:
        ws.service(service)
        folder = home / LOGS_FOLDER / env
        running = [r for r in backend.list_replicas(env) if r.service == service]
        shown = [Shown(r.replica_id, folder / f"{r.replica_id}.log", _running_note(r))
                 for r in sorted(running, key=lambda r: r.slot)]  # fmt: skip
        failed = [f for f in backend.failed_replicas(env) if f.status.service == service]
        shown += [Shown(f.status.replica_id, folder / f"{f.status.replica_id}.log",
                        f"failed and stopped: {f.reason}") for f in failed]  # fmt: skip
        stale = newest_per_slot(service_logs(home, env, service))
    if not shown:
        shown = [Shown(log.replica_id, log.path, f"not running; {_written(log.modified)}")
                 for log in stale]  # fmt: skip
    if not shown:
        raise FleetError(
            f"no replica of {service} has run in {env} on this machine "
            f"(no log under {home / LOGS_FOLDER})",
            hint=f"`{command_line(ws, 'status')}` shows what runs",
        )
    return shown


def show_logs(
    console: Console, shown: Iterable[Shown], *, lines: int, render_line: Callable[[str], Text]
) -> None:
    for log in shown:
        console.print(Text(f"==> {log.replica_id} ({log.note}) <==", style="bold"), soft_wrap=True)
        for line in read_tail(log.path, lines=lines):
            console.print(render_line(line), soft_wrap=True)  # a line stays one line for grep


def _running_note(status: ReplicaStatus) -> str:
    return f"{status.state}, pid {status.pid}" if status.pid else str(status.state)


def _written(moment: float) -> str:
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(moment))
    return f"its log was last written {stamp} UTC"


def unready_services(
    services: Iterable[str], replicas: Sequence[ReplicaStatus], environment: str
) -> list[str]:
    """The services of ``environment`` that have no ready replica; pure."""
    ready = {
        r.service
        for r in replicas
        if r.environment == environment and r.state is ReplicaState.READY
    }
    return sorted(set(services) - ready)


def render_failed(console: Console, ws: Workspace, failed: Sequence[FailedReplica]) -> None:
    """The replicas that failed and were stopped, why, and the end of their output."""
    if not failed:
        return
    table = Table(title="Failed replicas (stopped)", title_justify="left")
    for column in ("env", "service", "slot", "replica", "engine", "state", "stopped (UTC)"):
        table.add_column(column, justify="right" if column == "slot" else "left")
    for f in failed:
        s = f.status
        table.add_row(
            Text(s.environment), Text(s.service), str(s.slot), Text(s.replica_id),
            Text(f"{s.engine} {s.engine_version}"), Text("failed", style="bold red"),
            time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(f.stopped_at)),
        )  # fmt: skip
    console.print(table)
    home = ws.settings.home
    for f in failed:
        s = f.status
        console.print(Text(s.replica_id, style="bold red") + Text(f" {f.reason}"))
        path = home / LOGS_FOLDER / s.environment / f"{s.replica_id}.log"
        for line in read_tail(path, lines=FAILED_TAIL_LINES):
            console.print(Text(f"    | {line}"), soft_wrap=True)
    for env, service in sorted({(f.status.environment, f.status.service) for f in failed}):
        logs = command_line(ws, f"logs {service}", environment=env)
        console.print(Text(f"`{logs}` shows the whole output of {service}'s replicas"))
