"""Supervision of local replicas: run, probe, restart with back-off, drain, stop.

One ``Managed`` per process and one asyncio task that owns its life cycle. The
state machine::

    STARTING --probes pass--> READY <--liveness--> UNHEALTHY
       |  ^                     |
     exit |back-off           stop()--> DRAINING --idle or timeout--> (gone)
       v  |
    BACKOFF / CRASH_LOOP (3 exits in a row without becoming ready)

A replica's port is not its for life: other programs share the machine's ports,
and one may take it while the replica restarts. Before each start the port is
checked; a taken one is left for another free one (``ports.PortLeases``), and the
change reaches the gateway with the next snapshot of the agent (``on_change``).
Replica logs are capped (``LLMFLEET_LOG_MAX_BYTES``, ``LLMFLEET_LOG_FILES``): an
engine that prints a lot, or restarts often, does not fill the disk.

Time comes from the running loop, so tests can drive it with a fake clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import replace

import aiohttp

from llmfleet.backends.base import ReplicaState, ReplicaStatus
from llmfleet.backends.local import process
from llmfleet.backends.local.managed import (
    Managed,
    exit_words,
    log_limits_from_env,
    log_line,
    stop_words,
)
from llmfleet.backends.local.ports import PortLeases, port_free
from llmfleet.backends.local.probing import engine_busy, knows_own_key, run_probe
from llmfleet.observe.rotation import LogLimits, cap_appended_file

log = logging.getLogger(__name__)

__all__ = ["Managed", "Supervisor", "backoff_delay", "log_limits_from_env"]

CRASH_LOOP_AFTER = 3
LIVENESS_EVERY_S = 2.0
LIVENESS_FAILURES = 3
READINESS_POLL_S = 0.05
LOG_CHECK_EVERY_S = 2.0
# How long a stop waits for a cancelled supervision task to end. A task that swallows
# its cancel (3.11's wait_for can lose one that races a finished await) is left
# behind with a warning rather than holding up the agent's shutdown.
TASK_END_S = 5.0


def backoff_delay(failures: int) -> float:
    """Seconds to wait before restart number ``failures`` (1-based); pure.

    The first restart is immediate: a replica that was serving should come back
    as fast as it can (clients of a 1-replica service are waiting on it).
    """
    if failures <= 1:
        return 0.0
    return float(min(30.0, 0.5 * 2 ** (failures - 2)))


class Supervisor:
    """Owns every ``Managed`` process; calls ``on_change`` whenever a state changes.

    With ``ports`` a replica whose port is taken moves to a leased free one, and
    stopping it releases its lease; without (gateways, on the port the user chose)
    it restarts where it was. ``log_limits`` caps the logs; None: uncapped (a
    gateway rotates its own)."""

    def __init__(
        self,
        *,
        session: aiohttp.ClientSession,
        on_change: Callable[[], None],
        ports: PortLeases | None = None,
        log_limits: LogLimits | None = None,
        on_stopped: Callable[[ReplicaStatus], object] | None = None,
    ) -> None:
        self._session = session
        self._on_change = on_change
        self._on_stopped = on_stopped
        """told each stopped process's status as it was before the stop (``failed``)"""
        self._ports = ports
        self._log_limits = log_limits
        self.processes: dict[str, Managed] = {}

    def _set(self, managed: Managed, state: ReplicaState) -> None:
        if managed.state != state:
            managed.state = state
            self._on_change()

    def start(self, managed: Managed) -> None:
        """Begin supervising ``managed``; returns at once."""
        self.processes[managed.spec.replica_id] = managed
        managed.task = asyncio.create_task(self._run(managed), name=managed.spec.replica_id)
        managed.task.add_done_callback(self._ended)
        self._on_change()

    def _ended(self, task: asyncio.Task[None]) -> None:
        """Log a supervision that died of an error (its replica then shows as stopped)."""
        if not task.cancelled() and (error := task.exception()) is not None:
            log.error("supervision of %s failed", task.get_name(), exc_info=error)
            self._on_change()

    async def _run(self, managed: Managed) -> None:
        while not managed.stopping:
            self._cap_log(managed, force=True)
            problem = self._port_problem(managed)
            if problem is not None:
                log_line(managed.log_path, f"llmfleet: {problem}")
                await self._count_failure(managed)
                continue
            try:
                await self._launch(managed)
            except OSError as exc:  # e.g. the executable is gone from the cache
                log_line(managed.log_path, f"llmfleet: cannot start {managed.argv[0]}: {exc}")
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

    def _port_problem(self, managed: Managed) -> str | None:
        """Move a replica off a port another program holds (logged; the table and the
        gateway learn it through ``on_change``); a problem to report when it cannot
        move. An adopted process holds its port itself, and without leases there is
        nowhere to move to: both start where they are."""
        old = managed.port
        if managed.adopted_pid is not None or self._ports is None or port_free(old):
            return None
        taken = {m.port for m in self.processes.values()}
        try:
            new = self._ports.move(old, taken=taken)
        except OSError as exc:
            return f"port {old} is in use by another program, and {exc}"
        self._move(managed, new)
        log_line(
            managed.log_path,
            f"llmfleet: port {old} is in use by another program; moved this replica to port {new}",
        )
        return None

    def _move(self, managed: Managed, port: int) -> None:
        spec = managed.spec
        managed.port = port
        managed.argv = [arg.replace("{port}", str(port)) for arg in spec.launch.argv]
        if spec.port is not None:
            managed.spec = replace(spec, port=port)
        self._on_change()

    def _cap_log(self, managed: Managed, *, force: bool = False) -> None:
        """Keep the log under the cap; checked at most every ``LOG_CHECK_EVERY_S``."""
        if self._log_limits is None:
            return
        now = asyncio.get_running_loop().time()
        if force or now - managed.log_checked_at >= LOG_CHECK_EVERY_S:
            managed.log_checked_at = now
            cap_appended_file(managed.log_path, self._log_limits)

    async def _launch(self, managed: Managed) -> None:
        managed.ready_at = None
        if managed.adopted_pid is not None:  # keeps the start time its table gave it
            managed.started_at = managed.started_at or time.time()
            managed.pid, managed.adopted_pid = managed.adopted_pid, None
            managed.exited = asyncio.ensure_future(process.wait_pid(managed.pid))
        else:
            managed.started_at = time.time()
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
        log_line(managed.log_path, f"llmfleet: the engine {exit_words(code)}")
        managed.last_exit = code
        managed.restarts += 1
        await self._count_failure(managed)

    async def _count_failure(self, managed: Managed) -> None:
        """One more start that did not reach ready: back off longer each time."""
        managed.failures += 1
        stuck = managed.failures >= CRASH_LOOP_AFTER
        self._set(managed, ReplicaState.CRASH_LOOP if stuck else ReplicaState.BACKOFF)
        self._on_change()
        await asyncio.sleep(backoff_delay(managed.failures))

    async def _probe(self, managed: Managed) -> None:
        base = f"http://127.0.0.1:{managed.port}"
        while not await self._ready_once(managed, base):
            self._cap_log(managed)
            await asyncio.sleep(READINESS_POLL_S)
        managed.failures = 0
        managed.ready_at = time.time()
        if not managed.stopping:
            serving = ReplicaState.UNHEALTHY if managed.hardware_fault else ReplicaState.READY
            self._set(managed, serving)
        await self._watch_liveness(managed, base)

    async def _ready_once(self, managed: Managed, base: str) -> bool:
        """Whether the replica is ready: its own engine (``knows_own_key``), not
        whatever else answers on its port, passes every readiness probe."""
        if not await knows_own_key(self._session, base, managed.spec, api_key=managed.api_key):
            return False
        for probe in managed.spec.readiness:
            if not await run_probe(self._session, base, probe, api_key=managed.api_key):
                return False
        return True

    async def _watch_liveness(self, managed: Managed, base: str) -> None:
        misses = 0
        while True:
            await asyncio.sleep(LIVENESS_EVERY_S)
            self._cap_log(managed)
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
        before = managed.status()  # the state it was in (crash-looping?), not DRAINING
        managed.stopping = True
        self._set(managed, ReplicaState.DRAINING)
        if managed.ready_at is not None and drain_timeout_s > 0:
            await self._drain(managed, timeout_s=drain_timeout_s)
        running = managed.exited is not None and not managed.exited.done()
        if managed.pid is not None and managed.exited is not None and running:
            await process.terminate(managed.pid, wait=managed.exited, grace_s=grace_s)
        log_line(managed.log_path, stop_words(managed.exited, was_running=running))
        if self._on_stopped is not None:
            self._on_stopped(before)
        if managed.task is not None:
            managed.task.cancel()
            # A task that died of an error was logged when it ended (``_ended``);
            # asyncio.wait neither raises it nor swallows a cancel of this stop.
            _, pending = await asyncio.wait({managed.task}, timeout=TASK_END_S)
            if pending:
                log.warning(
                    "replica %s: its supervision did not end %.0f s after it was cancelled;"
                    " left behind",
                    replica_id,
                    TASK_END_S,
                )
        self.processes.pop(replica_id, None)
        if self._ports is not None:
            self._ports.release(managed.port)
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
