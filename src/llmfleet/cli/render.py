"""Rendering for the terminal with rich; no logic beyond formatting."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table
from rich.text import Text

from llmfleet.backends.base import ReplicaState, ReplicaStatus
from llmfleet.backends.exits import describe_exit
from llmfleet.plan.model import SYMBOLS, Op, Plan

if TYPE_CHECKING:
    from llmfleet.errors import SpecProblem
    from llmfleet.observe.log_lines import LogEntry
    from llmfleet.state.records import Revision

OP_STYLE = {Op.CREATE: "green", Op.UPDATE: "yellow", Op.REPLACE: "magenta", Op.DELETE: "red"}
STATE_STYLE = {
    ReplicaState.READY: "green",
    ReplicaState.STARTING: "cyan",
    ReplicaState.DRAINING: "yellow",
    ReplicaState.UNHEALTHY: "red",
    ReplicaState.BACKOFF: "yellow",
    ReplicaState.CRASH_LOOP: "bold red",
    ReplicaState.STOPPED: "dim",
}


def render_plan(console: Console, plan: Plan) -> None:
    console.print(
        Text(f"Environment {plan.environment}", style="bold")
        + Text(f" (state serial {plan.serial})")
    )
    for action in plan.actions:
        style = OP_STYLE[action.op]
        line = Text(f"  {SYMBOLS[action.op]:>3} ", style=style)
        line.append(action.address, style=f"bold {style}")
        if action.replica_id and action.op is not Op.CREATE:
            line.append(f" ({action.replica_id})", style="dim")
        console.print(line)
        for reason in action.reasons:
            console.print(Text(f"        {reason}", style="dim"))
    for note in plan.notes:
        console.print(Text("  note: ", style="yellow") + Text(note))
    console.print(Text(plan.summary(), style="bold" if plan.has_changes else "green"))


def _uptime(status: ReplicaStatus) -> str:
    since = status.ready_at or status.started_at
    if since is None:
        return "-"
    seconds = int(time.time() - since)
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    return f"{seconds // 3600}h{(seconds % 3600) // 60:02d}m"


def render_status(
    console: Console,
    replicas: Sequence[ReplicaStatus],
    gateways: Sequence[ReplicaStatus],
    *,
    unready: Mapping[str, Sequence[str]] | None = None,
) -> None:
    """The replicas table and each gateway's line; ``unready`` (environment -> services
    with no ready replica) is said on the gateway's line: a ready gateway in front of
    nothing is not a ready service."""
    table = Table(title="Replicas", title_justify="left")
    labelled = any(r.labels for r in replicas)  # no empty column for fleets without labels
    for column in (
        "env",
        "service",
        "slot",
        "replica",
        "engine",
        "state",
        "pid",
        "port",
        "uptime",
        "restarts",
        *(("labels",) if labelled else ()),
    ):
        table.add_column(
            column, justify="right" if column in {"slot", "pid", "port", "restarts"} else "left"
        )
    for r in sorted(replicas, key=lambda r: (r.environment, r.service, r.slot)):
        labels = ",".join(f"{k}={v}" for k, v in sorted(r.labels.items()))
        table.add_row(
            Text(r.environment),
            Text(r.service),
            str(r.slot),
            Text(r.replica_id),
            Text(f"{r.engine} {r.engine_version}"),
            Text(str(r.state), style=STATE_STYLE.get(r.state, "")),
            str(r.pid or "-"),
            str(r.port),
            _uptime(r),
            str(r.restarts),
            *((Text(labels),) if labelled else ()),
        )
    console.print(table)
    for gateway in gateways:
        host = gateway.config.get("host", "127.0.0.1")
        state = Text(str(gateway.state), style=STATE_STYLE.get(gateway.state, ""))
        missing = (unready or {}).get(gateway.environment)
        note = Text(f"; no ready replica: {', '.join(missing)}" if missing else "", "bold red")
        console.print(
            Text(f"gateway {gateway.environment}: http://{host}:{gateway.port}  ") + state + note
        )
    for r in replicas:
        if r.state in (ReplicaState.CRASH_LOOP, ReplicaState.BACKOFF) and r.log_tail:
            meaning = describe_exit(r.last_exit)
            console.print(
                Text(f"{r.replica_id}", style="bold red")
                + Text(f" {meaning.summary}; last log lines:")
            )
            if meaning.fix:
                console.print(Text(f"    fix: {meaning.fix}"))
            for line in r.log_tail:
                console.print(Text(f"    | {line}"))


def render_history(console: Console, revisions: Sequence[Revision]) -> None:
    table = Table(title="History", title_justify="left")
    for column in ("serial", "env", "kind", "outcome", "when (UTC)", "user", "changes", "message"):
        table.add_column(column)
    for rev in revisions:
        actions = rev.plan.get("actions", []) if isinstance(rev.plan, dict) else []
        shown = "interrupted" if (rev.error or "").startswith("interrupted:") else rev.outcome
        outcome = Text(shown, style="green" if rev.outcome == "success" else "red")
        table.add_row(
            str(rev.serial),
            Text(rev.environment),
            Text(rev.kind),
            outcome,
            rev.created_at.strftime("%Y-%m-%d %H:%M:%S"),
            Text(rev.user),
            str(len(actions)),
            Text(rev.message or (rev.error or "")[:60]),
        )
    console.print(table)


def render_spec_warnings(console: Console, warnings: Sequence[SpecProblem]) -> None:
    """Allowed but risky settings (``spec.risks``), each at its file:line:col, in yellow."""
    for warning in warnings:
        console.print(Text("warning: ", style="bold yellow") + Text(warning.render()))


LEVEL_STYLE = {
    "DEBUG": "dim",
    "INFO": "",
    "WARNING": "yellow",
    "ERROR": "red",
    "CRITICAL": "bold red",
}


def log_line_text(entry: LogEntry) -> Text:
    """``2026-12-05 10:31:02.123Z INFO  message  status=200 ... 12.3 ms request_id=...``"""
    level = entry.level.upper()
    text = Text(f"{entry.timestamp.replace('T', ' ')} ")
    text.append(f"{level:<5}", style=LEVEL_STYLE.get(level, ""))
    text.append(f" {entry.message}")
    extras = [f"{name}={value}" for name, value in entry.summary]
    if entry.duration_ms is not None:
        extras.append(f"{entry.duration_ms:.1f} ms")
    if entry.request_id:
        extras.append(f"request_id={entry.request_id}")
    if extras:
        text.append("  " + " ".join(extras), style="dim")
    if entry.error:
        text.append(f"  {entry.error}", style="red")
    return text
