"""A replica's exit is explained, and its environment comes from the spec and the install only."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
from rich.console import Console

from llmfleet.backends.base import ReplicaState, ReplicaStatus
from llmfleet.backends.exits import describe_exit, exit_signal
from llmfleet.cli.render import render_status
from tests.fixtures.fleet import Fleet

SPEC = """
services:
  chat:
    model: sim:tiny
    engine:
      kind: sim
      version: "1.0.0"
      args: ARGS
      env: {FROM_THE_SPEC: "yes"}
    replicas: 1
environments:
  production:
    gateway: {port: GATEWAY_PORT}
"""


@pytest.mark.parametrize(
    ("code", "words"),
    [
        (-4, "SIGILL: the engine binary uses an instruction this CPU cannot run"),
        (132, "SIGILL: the engine binary uses an instruction this CPU cannot run"),
        (-9, "out-of-memory killer"),
        (-11, "segmentation fault"),
        (127, "executable or a library it needs is missing"),
        (3, "exited with code 3"),
        (None, "unknown status"),
    ],
)
def test_exit_codes_are_named_with_their_usual_meaning(code: int | None, words: str) -> None:
    assert words in str(describe_exit(code))


def test_signals_are_read_from_python_and_shell_exit_codes() -> None:
    assert exit_signal(-4) is signal.SIGILL
    assert exit_signal(128 + 9) is signal.SIGKILL
    assert exit_signal(1) is None and exit_signal(0) is None


def test_a_replica_killed_by_sigill_is_reported_by_name_with_the_fix(fleet: Fleet) -> None:
    """The apply error and `status` name SIGILL and what it means, not 'exit code -4'."""
    fleet.write(SPEC.replace("ARGS", '["--fail-start-signal", "ILL"]'))
    result = fleet.run("apply", "--yes", check=False)
    assert result.returncode != 0
    assert "SIGILL: the engine binary uses an instruction this CPU cannot run" in result.stderr
    assert "LLAMA_ARG_REPACK" in result.stderr  # the fix
    assert "Traceback" not in result.stderr
    log = next((fleet.home / "logs").rglob("production-chat-0-*.log")).read_text()
    assert "llmfleet: the engine was killed by SIGILL" in log  # the log tail explains it


def test_status_names_the_signal_of_a_crash_looping_replica_and_its_fix() -> None:
    crashed = ReplicaStatus(
        replica_id="production-chat-0-abc123", environment="production", service="chat",
        slot=0, runtime_hash="h", engine="llamacpp", engine_version="11434.0.0",
        state=ReplicaState.CRASH_LOOP, port=1234, restarts=3, last_exit=-4,
        log_tail=("load_tensors: AMX model buffer size = 41.0 MiB",),
    )
    console = Console(width=200, record=True)
    render_status(console, [crashed], [])
    text = console.export_text()
    assert "killed by SIGILL: the engine binary uses an instruction this CPU cannot run" in text
    assert "fix: " in text and "LLAMA_ARG_REPACK" in text
    assert "last exit -4" not in text


def _environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode().split("=", 1) for item in raw if b"=" in item)


def test_replica_environment_is_the_spec_not_the_shell_that_started_the_agent(
    fleet: Fleet,
) -> None:
    """A variable exported in the shell of the first command never reaches a replica;
    engine.env does."""
    fleet.write(SPEC.replace("ARGS", "[]"))
    fleet.run("apply", "--yes", env={"LEAKED_FROM_SHELL": "secret", "LLAMA_ARG_REPACK": "true"})
    replica = fleet.ready()[0]
    assert replica.pid is not None
    environ = _environ(replica.pid)
    assert environ["FROM_THE_SPEC"] == "yes"
    assert "LEAKED_FROM_SHELL" not in environ
    assert "LLAMA_ARG_REPACK" not in environ
    assert environ["PATH"] and environ["HOME"]
