"""Supervision of local replicas: run, probe, restart with back-off, drain, stop.

One ``Managed`` per process and one asyncio task that owns its life cycle. The
state machine::

    STARTING --probes pass--> READY <--liveness--> UNHEALTHY
       |  ^                     |
     exit |back-off           stop()--> DRAINING --idle or timeout--> (gone)
       v  |
    BACKOFF / CRASH_LOOP (3 exits in a row without becoming ready)

Time comes from the running loop, so tests can drive it with a fake clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from llmfleet.backends.base import ReplicaSpec, ReplicaState, ReplicaStatus
from llmfleet.backends.exits import describe_exit
from llmfleet.backends.local import process
from llmfleet.backends.local.probing import engine_busy, run_probe
from llmfleet.private_files import open_private

CRASH_LOOP_AFTER = 3
LIVENESS_EVERY_S = 2.0
LIVENESS_FAILURES = 3
READINESS_POLL_S = 0.05


def backoff_delay(failures: int) -> float:
    """Seconds to wait before restart number ``failures`` (1-based); pure.

    The first restart is immediate: a replica that was serving should come back
    as fast as it can (clients of a 1-replica service are waiting on it).
    """
    if failures <= 1:
        return 0.0
    return float(min(30.0, 0.5 * 2 ** (failures - 2)))


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

    def launch_env(self) -> dict[str, str]:
        """The extra environment of the process: the spec's, and the API key under the
        variable its engine reads (argv is readable by every local user)."""
        env = dict(self.spec.launch.env)
        if self.api_key and self.spec.launch.api_key_env:
            env[self.spec.launch.api_key_env] = self.api_key
        return env

    def status(self, *, log_lines: int = 0) -> ReplicaStatus:
        spec = self.spec
        return ReplicaStatus(
            replica_id=spec.replica_id,
            environment=spec.environment,
            service=spec.service,
            slot=spec.slot,
            runtime_hash=spec.runtime_hash,
            engine=spec.engine,
            engine_version=spec.engine_version,
            state=self.state,
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


def _exit_words(code: int | None) -> str:
    """'was killed by SIGILL: ...' or 'exited with code 3', for the replica's log."""
    meaning = str(describe_exit(code))
    return f"was {meaning}" if meaning.startswith(("killed", "stopped")) else meaning


def _log_line(path: Path, line: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = open_private(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    with os.fdopen(fd, "a") as handle:
        handle.write(line + "\n")


class Supervisor:
    """Owns every ``Managed`` process; calls ``on_change`` whenever a state changes."""

    def __init__(self, *, session: aiohttp.ClientSession, on_change: Callable[[], None]) -> None:
        self._session = session
        self._on_change = on_change
        self.processes: dict[str, Managed] = {}

    def _set(self, managed: Managed, state: ReplicaState) -> None:
        if managed.state != state:
            managed.state = state
            self._on_change()

    def start(self, managed: Managed) -> None:
        """Begin supervising ``managed``; returns at once."""
        self.processes[managed.spec.replica_id] = managed
        managed.task = asyncio.create_task(self._run(managed), name=managed.spec.replica_id)
        self._on_change()

    async def _run(self, managed: Managed) -> None:
        while not managed.stopping:
            try:
                await self._launch(managed)
            except OSError as exc:  # e.g. the executable is gone from the cache
                _log_line(managed.log_path, f"llmfleet: cannot start {managed.argv[0]}: {exc}")
                await self._after_exit(managed, 127)
                continue
            probe = asyncio.create_task(self._probe(managed))
            code = await self._wait_exit(managed)
            probe.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await probe
            if managed.stopping:
                return
            await self._after_exit(managed, code)

    async def _launch(self, managed: Managed) -> None:
        managed.ready_at = None
        managed.started_at = time.time()
        if managed.adopted_pid is not None:
            managed.pid, managed.adopted_pid = managed.adopted_pid, None
            managed.exited = asyncio.ensure_future(process.wait_pid(managed.pid))
        else:
            proc = await process.spawn(
                managed.argv, env=managed.launch_env(), log_path=managed.log_path
            )
            managed.pid = proc.pid
            managed.exited = asyncio.ensure_future(proc.wait())
        self._set(managed, ReplicaState.STARTING)
        self._on_change()

    async def _wait_exit(self, managed: Managed) -> int | None:
        assert managed.exited is not None
        result = await asyncio.shield(managed.exited)
        return result if isinstance(result, int) else None

    async def _after_exit(self, managed: Managed, code: int | None) -> None:
        # The engine's own last lines rarely say why it died by a signal: say it at the
        # end of its log, where `status` and a failed apply show the tail.
        _log_line(managed.log_path, f"llmfleet: the engine {_exit_words(code)}")
        managed.last_exit = code
        managed.restarts += 1
        managed.failures += 1
        stuck = managed.failures >= CRASH_LOOP_AFTER
        self._set(managed, ReplicaState.CRASH_LOOP if stuck else ReplicaState.BACKOFF)
        self._on_change()
        await asyncio.sleep(backoff_delay(managed.failures))

    async def _probe(self, managed: Managed) -> None:
        base = f"http://127.0.0.1:{managed.port}"
        while not await self._ready_once(managed, base):  # noqa: ASYNC110 - polling HTTP
            await asyncio.sleep(READINESS_POLL_S)
        managed.failures = 0
        managed.ready_at = time.time()
        if not managed.stopping:
            serving = ReplicaState.UNHEALTHY if managed.hardware_fault else ReplicaState.READY
            self._set(managed, serving)
        await self._watch_liveness(managed, base)

    async def _ready_once(self, managed: Managed, base: str) -> bool:
        for probe in managed.spec.readiness:
            if not await run_probe(self._session, base, probe, api_key=managed.api_key):
                return False
        return True

    async def _watch_liveness(self, managed: Managed, base: str) -> None:
        misses = 0
        while True:
            await asyncio.sleep(LIVENESS_EVERY_S)
            ok = await run_probe(
                self._session, base, managed.spec.liveness, api_key=managed.api_key
            )
            misses = 0 if ok else misses + 1
            if managed.stopping:
                continue
            if misses >= LIVENESS_FAILURES:
                self._set(managed, ReplicaState.UNHEALTHY)
            elif ok and managed.hardware_fault is None:
                self._set(managed, ReplicaState.READY)

    async def stop(self, replica_id: str, *, drain_timeout_s: float, grace_s: float = 5.0) -> None:
        """Drain (the gateway stops routing to it; wait until the engine is idle), then stop."""
        managed = self.processes.get(replica_id)
        if managed is None:
            return
        managed.stopping = True
        self._set(managed, ReplicaState.DRAINING)
        if managed.ready_at is not None and drain_timeout_s > 0:
            await self._drain(managed, timeout_s=drain_timeout_s)
        if managed.pid is not None and managed.exited is not None and not managed.exited.done():
            await process.terminate(managed.pid, wait=managed.exited, grace_s=grace_s)
        if managed.task is not None:
            managed.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await managed.task
        self.processes.pop(replica_id, None)
        self._on_change()

    async def _drain(self, managed: Managed, *, timeout_s: float) -> None:
        """Wait for in-flight work to finish: the engine's busy gauges read 0 twice."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        await asyncio.sleep(min(0.5, timeout_s))  # let the gateway see DRAINING first
        base = f"http://127.0.0.1:{managed.port}"
        idle_reads = 0
        while loop.time() < deadline and idle_reads < 2:
            busy = await engine_busy(self._session, base, managed.spec, api_key=managed.api_key)
            idle_reads = idle_reads + 1 if busy is False else 0
            await asyncio.sleep(0.1)

    async def stop_all(self, *, drain_timeout_s: float) -> None:
        await asyncio.gather(
            *(self.stop(rid, drain_timeout_s=drain_timeout_s) for rid in list(self.processes))
        )
