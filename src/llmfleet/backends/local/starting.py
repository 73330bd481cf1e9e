"""Starting the local agent from the CLI, and knowing when it must be started.

The agent is a detached process (``--daemonize``) so it outlives the command that
started it. A command also starts it when it died and left processes running
(``orphans_running``): the new agent adopts them from its table, so no command
reports or plans an empty runtime beside replicas still serving.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from llmfleet.backends.local.layout import AGENT_LOG_NAME, STATE_NAME
from llmfleet.backends.local.process import listed_pid
from llmfleet.backends.local.table import read_table
from llmfleet.errors import AgentUnreachableError
from llmfleet.private_files import check_private, open_private, private_folder

AGENT_START_TIMEOUT_S = 15.0


def orphans_running(home: Path) -> bool:
    """True when the agent's table lists a replica or gateway whose process still runs
    (its program, not a reused pid). Raises ``UnsafePathError`` for a home or table
    another user could have written."""
    if not private_folder(home, create=False):
        return False
    table = read_table(home)
    if table is None:
        return False
    rows = [*table.get("replicas", []), *table.get("gateways", [])]
    return any(isinstance(row, dict) and listed_pid(row) for row in rows)


def start_agent(home: Path, *, answers: Callable[[], bool]) -> None:
    """Start the agent of ``home`` and wait until ``answers()``; raises
    ``AgentUnreachableError`` naming its log when it refuses or is too slow."""
    private_folder(home)
    check_private(home / STATE_NAME)  # the agent refuses it too; here the user sees why
    log_path = home / AGENT_LOG_NAME
    log = open_private(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    argv = [sys.executable, "-m", "llmfleet.backends.local.agent", "--daemonize"]
    try:
        # --daemonize forks and the first process exits at once: nothing is left
        # for us to reap, and the agent is no child of this command.
        started = subprocess.run(
            [*argv, "--home", str(home)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            check=False,
            timeout=AGENT_START_TIMEOUT_S,
        )
    finally:
        os.close(log)
    if started.returncode != 0:
        raise AgentUnreachableError(
            f"the local agent refused to start (exit code {started.returncode})",
            hint=f"see {log_path}",
        )
    deadline = time.monotonic() + AGENT_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if answers():
            return
        time.sleep(0.05)
    raise AgentUnreachableError(
        f"the local agent did not start within {AGENT_START_TIMEOUT_S:.0f} s",
        hint=f"see {log_path}",
    )
