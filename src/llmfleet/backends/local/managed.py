"""What the agent knows of one supervised process, and the log file it writes to.

``Managed`` is the supervisor's record of a replica or gateway: its spec, port,
argv, state and counters; ``ReplicaStatus`` is what it shows of itself. The
helpers here write the lines llmfleet adds to a process's log (why it exited,
why it moved) and read how large those logs may grow.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmfleet.backends.base import ReplicaSpec, ReplicaState, ReplicaStatus
from llmfleet.backends.exits import describe_exit, exit_signal
from llmfleet.backends.local import process
from llmfleet.observe.rotation import LogLimits
from llmfleet.private_files import open_private

log = logging.getLogger(__name__)


@dataclass
class Managed:
    """One supervised process and what the agent knows of it."""

    spec: ReplicaSpec
    port: int
    argv: list[str]
    log_path: Path
    state: ReplicaState = ReplicaState.STARTING
    pid: int | None = None
    started_at: float | None = None
    ready_at: float | None = None
    restarts: int = 0
    failures: int = 0
    last_exit: int | None = None
    stopping: bool = False
    adopted_pid: int | None = None
    hardware_fault: str | None = None  # set by observe.local on a GPU fault
    api_key: str | None = field(default=None, repr=False)
    """the engine's API key, made by the agent; given in its environment (``launch_env``)"""
    task: asyncio.Task[None] | None = None
    exited: asyncio.Future[Any] | None = field(default=None, repr=False)
    log_checked_at: float = field(default=0.0, repr=False)
    """the loop time its log size was last checked against the cap"""

    def launch_env(self) -> dict[str, str]:
        """The extra environment of the process: the spec's, and the API key under the
        variable its engine reads (argv is readable by every local user)."""
        env = dict(self.spec.launch.env)
        if self.api_key and self.spec.launch.api_key_env:
            env[self.spec.launch.api_key_env] = self.api_key
        return env

    @property
    def unsupervised(self) -> bool:
        """Its supervising task ended though nobody stopped it (an error the supervisor
        did not foresee): nothing restarts it any more."""
        return self.task is not None and self.task.done() and not self.stopping

    def status(self, *, log_lines: int = 0) -> ReplicaStatus:
        spec = self.spec
        # Shown as stopped, which plan replaces as drift: it stayed in 'backoff' with a
        # dead pid, and plan said 'No changes'.
        state = ReplicaState.STOPPED if self.unsupervised else self.state
        return ReplicaStatus(
            replica_id=spec.replica_id,
            environment=spec.environment,
            service=spec.service,
            slot=spec.slot,
            runtime_hash=spec.runtime_hash,
            engine=spec.engine,
            engine_version=spec.engine_version,
            state=state,
            port=self.port,
            pid=self.pid,
            started_at=self.started_at,
            ready_at=self.ready_at,
            restarts=self.restarts,
            last_exit=self.last_exit,
            log_tail=tuple(process.tail_lines(self.log_path, lines=log_lines)) if log_lines else (),
            served_name=spec.served_name,
            labels=dict(spec.labels),
            config=dict(spec.config),
        )


def exit_words(code: int | None) -> str:
    """'was killed by SIGILL: ...' or 'exited with code 3', for the replica's log."""
    meaning = str(describe_exit(code))
    return f"was {meaning}" if meaning.startswith(("killed", "stopped")) else meaning


def stop_words(exited: asyncio.Future[Any] | None, *, was_running: bool) -> str:
    """The line that ends a process's log when llmfleet stops it, so that its output
    read later (``llmfleet logs``) says how it ended."""
    if not was_running:
        return "llmfleet: stopped by llmfleet (it was not running: waiting to restart)"
    code = None
    if exited is not None and exited.done() and not exited.cancelled():
        result = None if exited.exception() else exited.result()
        code = result if isinstance(result, int) else None
    if code is None:
        return "llmfleet: stopped by llmfleet"
    sig = exit_signal(code)
    return "llmfleet: stopped by llmfleet; it " + (
        f"ended on {sig.name}" if sig is not None else f"exited with code {code}"
    )


def log_limits_from_env(env: Mapping[str, str]) -> LogLimits | None:
    """The cap of replica logs; a setting that cannot be read is logged and the
    defaults apply (a log setting is no reason for the agent not to start)."""
    try:
        return LogLimits.from_env(env)
    except ValueError as exc:
        log.warning("%s; using the default log limits", exc)
        return LogLimits()


def log_line(path: Path, line: str) -> None:
    """Append ``line`` to a replica's log; on stderr (the agent's log) when that cannot
    be written (a full disk): supervision must not die of a log line."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = open_private(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        with os.fdopen(fd, "a") as handle:
            handle.write(line + "\n")
    except OSError as exc:
        message = f"{line} (not written to {path}: {exc.strerror or exc})"
        with contextlib.suppress(OSError):  # stderr on the same full disk: nowhere left
            print(message, file=sys.stderr, flush=True)
