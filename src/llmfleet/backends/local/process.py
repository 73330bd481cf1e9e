"""Starting, watching and stopping one OS process; the agent's only contact with the OS.

Each process gets its own session (process group) so a stop reaches the engine's
children too, and writes stdout and stderr to one log file per replica.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections import deque
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from llmfleet.engines.environment import engine_environment
from llmfleet.private_files import open_private


async def spawn(
    argv: list[str], *, env: dict[str, str], log_path: Path
) -> asyncio.subprocess.Process:
    """Start ``argv`` detached from our terminal, appending its output to ``log_path``."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    full_env = engine_environment(env)
    fd = open_private(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    with os.fdopen(fd, "ab") as log:
        return await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log,
            stderr=asyncio.subprocess.STDOUT,
            env=full_env,
            start_new_session=True,
        )


def pid_alive(pid: int) -> bool:
    """True if ``pid`` exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    with contextlib.suppress(OSError):
        return stat.read_text().split(") ", 1)[1][0] != "Z"
    return True


def pid_runs(pid: int, argv0: str) -> bool:
    """True if ``pid`` is alive and is the program ``argv0`` (guards against pid reuse)."""
    if not pid_alive(pid):
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return bool(cmdline) and cmdline[0].decode(errors="replace") == argv0


def listed_pid(row: Mapping[str, Any]) -> int | None:
    """The pid of an agent table row when that process still runs the row's program
    (None for a row of a process that is gone, or whose pid another program reuses)."""
    pid = row.get("pid")
    try:
        argv0 = row["spec"]["launch"]["argv"][0]
    except (KeyError, IndexError, TypeError):
        return None
    return pid if isinstance(pid, int) and pid_runs(pid, str(argv0)) else None


async def wait_pid(pid: int, *, poll_s: float = 0.2) -> None:
    """Wait for a process that is not our child (adopted after an agent restart)."""
    while pid_alive(pid):  # noqa: ASYNC110 - not our child: no event to wait on
        await asyncio.sleep(poll_s)


def signal_group(pid: int, sig: signal.Signals) -> None:
    """Send ``sig`` to the process group led by ``pid``; quietly ignore a gone group."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


async def terminate(pid: int, *, wait: asyncio.Future[Any] | None, grace_s: float) -> None:
    """SIGTERM the group, then SIGKILL it if it is still there after ``grace_s``."""
    signal_group(pid, signal.SIGTERM)
    waiter = wait if wait is not None else asyncio.ensure_future(wait_pid(pid))
    try:
        await asyncio.wait_for(asyncio.shield(waiter), timeout=grace_s)
    except TimeoutError:
        signal_group(pid, signal.SIGKILL)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(waiter), timeout=grace_s)


def tail_lines(path: Path, *, lines: int) -> list[str]:
    """The last ``lines`` lines of a log file (empty if it does not exist)."""
    if not path.exists():
        return []
    with path.open("rb") as handle:
        size = handle.seek(0, os.SEEK_END)
        handle.seek(max(0, size - 64 * 1024 * max(1, lines // 100)))
        tail: deque[bytes] = deque(handle.read().splitlines(), maxlen=lines)
    return [line.decode(errors="replace") for line in tail]
