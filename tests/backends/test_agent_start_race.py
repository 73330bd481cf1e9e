"""Commands that start the local agent at the same moment get one agent between them.

Before, each saw no agent and started one: the last to bind took the socket and the
others kept running unseen, each with its own supervision, upgrade ticker and observer,
for as long as the machine stayed up.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from pathlib import Path

from llmfleet.backends.local.client import LocalBackend
from tests.backends.starters import start_agent_when_ready
from tests.fixtures.orphans import agent_pid, alive

STARTERS = 3


def agents_of(home: Path) -> list[int]:
    """Every agent process of ``home``, from the command lines of this machine."""
    wanted = f"llmfleet.backends.local.agent\0--daemonize\0--home\0{home}\0".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if wanted in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def test_commands_starting_the_agent_at_once_leave_one_agent(tmp_path: Path) -> None:
    home = tmp_path / ".llmfleet"
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(STARTERS)
    starters = [
        context.Process(target=start_agent_when_ready, args=(str(home), barrier))
        for _ in range(STARTERS)
    ]
    try:
        for starter in starters:
            starter.start()
        for starter in starters:
            starter.join(timeout=60)
        assert [s.exitcode for s in starters] == [0] * STARTERS, "each command got an agent"
        time.sleep(0.5)  # a second agent would be serving by now
        running = agents_of(home)
        assert running == [agent_pid(home)], f"agents of one home: {running}"
        backend = LocalBackend(home)
        try:
            backend.shutdown(timeout_s=30)
        finally:
            backend.close()
        assert agents_of(home) == []
    finally:
        for starter in starters:
            if starter.exitcode is None:
                starter.kill()
        for pid in agents_of(home):
            os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + 10
            while alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
