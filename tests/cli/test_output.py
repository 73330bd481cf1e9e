"""What the CLI prints is the data as written: no markup, no emoji codes, no cut columns."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import typer

from llmfleet.cli.app import app
from tests.fixtures.fleet import Fleet

GOOD = """services:
  chat:
    model: sim:tiny
    engine: {kind: sim, version: "1.2.0"}
    replicas: 1
environments:
  production: {gateway: {port: GATEWAY_PORT}}
"""


def run_piped(fleet: Fleet, *args: str) -> subprocess.CompletedProcess[str]:
    """The CLI as a CI job runs it: stdout a pipe, no COLUMNS, no terminal."""
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    return subprocess.run(
        [sys.executable, "-m", "llmfleet", *args, "-f", str(fleet.spec)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=fleet.root,
        env={**env, "NO_COLOR": "1"},
    )


def test_file_line_column_at_line_100_is_not_an_emoji(fleet: Fleet) -> None:
    """``fleet.yaml:100:7`` stays as written; rich would read ``:100:`` as an emoji code."""
    padding = "".join(f"# line {n}\n" for n in range(1, 95))
    fleet.write(padding + GOOD.replace("replicas: 1", "replicas: 0"))
    result = run_piped(fleet, "check")
    assert result.returncode == 2, result.stderr
    assert "fleet.yaml:99:5: services.chat.replicas: must be >= 1" in result.stderr
    padding = "".join(f"# line {n}\n" for n in range(1, 96))
    fleet.write(padding + GOOD.replace("replicas: 1", "replicas: 0"))
    result = run_piped(fleet, "check")
    assert "fleet.yaml:100:5: services.chat.replicas" in result.stderr, result.stderr
    assert "\U0001f4af" not in result.stderr


def test_markup_in_user_data_is_printed_verbatim(fleet: Fleet) -> None:
    """A key spelt like rich markup (``[/x]``, ``[bold]``) is shown as written, not styled
    and not a crash."""
    fleet.write(GOOD.replace("replicas: 1", 'replicas: 1\n    "[/x]": 1\n    "[bold]y": 2'))
    result = run_piped(fleet, "check")
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert "unknown field '[/x]'" in result.stderr
    assert "unknown field '[bold]y'" in result.stderr


def test_tables_are_not_cut_when_stdout_is_a_pipe(fleet: Fleet) -> None:
    """A CI log gets whole names, not ``prod…``: the table uses the width it needs."""
    fleet.write(GOOD)
    name = "a-key-for-the-nightly-batch-job-of-the-analytics-team-in-europe-west-" + "x" * 40
    created = run_piped(fleet, "keys", "create", name)
    assert created.returncode == 0, created.stderr
    assert name in created.stdout
    listed = run_piped(fleet, "keys", "list")
    assert listed.returncode == 0, listed.stderr
    assert name in listed.stdout, listed.stdout
    assert "…" not in listed.stdout


def _leaf_commands(group: Any, prefix: str = "") -> dict[str, Any]:
    """Every command under ``group`` by its full name (typer may vendor its own click)."""
    found: dict[str, Any] = {}
    for name, command in group.commands.items():
        if hasattr(command, "commands"):
            found |= _leaf_commands(command, f"{prefix}{name} ")
        else:
            found[prefix + name] = command
    return found


def test_every_command_takes_file_option() -> None:
    """``-f/--file`` works everywhere, so a script can pass it to any command."""
    commands = _leaf_commands(typer.main.get_group(app))
    assert {"schema", "export grafana", "check", "keys list"} <= set(commands)
    without = [
        name
        for name, command in commands.items()
        if not any({"-f", "--file"} <= set(p.opts) for p in command.params)
    ]
    assert without == []


def test_schema_and_grafana_accept_file(fleet: Fleet) -> None:
    fleet.write(GOOD)
    assert run_piped(fleet, "schema").returncode == 0
    assert run_piped(fleet, "export", "grafana").returncode == 0
