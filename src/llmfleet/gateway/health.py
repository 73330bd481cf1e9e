"""Replica health as the gateway sees it: passive ejection and active probes.

Passive: a connect error or a timeout ejects a replica at once (the process is
dead or hung); 5xx answers eject it after ``consecutive_5xx`` in a row, so an
engine that fails one request in a hundred keeps serving. A 429 never ejects:
it is the engine's back-pressure (its queue is full), the request goes to
another replica and this one keeps its other work. An ejected replica
gets no new requests for ``eject_s``; after that the first passing probe
re-admits it. Active: the prober asks every ready replica's ``/health`` each
interval (a failure ejects it too) and reads its engine's queue length from
``/metrics`` for least-load routing; a replica whose ``/health`` passes is
never ejected for its ``/metrics`` (it only loses its queue length until the
next probe). Time comes from the injected clock. A round probes at most
``max_per_round`` replicas (``probe_round``): past that the others take turns,
and ejected ones are asked every round so that they come back as soon as they
may.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from llmfleet.backends.base import ReplicaStatus
from llmfleet.gateway.pool import ConnectionPool

log = logging.getLogger(__name__)

WAITING_SERIES = (
    b"sim:requests_waiting",
    b"llamacpp:requests_deferred",
    b"vllm:num_requests_waiting",
)


class Failure(StrEnum):
    CONNECT = "connect"
    TIMEOUT = "timeout"
    SERVER_ERROR = "5xx"
    BUSY = "429"
    PROBE = "probe"
    KEY = "key"
    """the engine refused the gateway's API key (401): this replica cannot be used
    until a snapshot brings its right key."""


@dataclass
class _Record:
    ejected_until: float | None = None
    consecutive_5xx: int = 0


class HealthTracker:
    """Which replicas are ejected; ``on_change`` fires when that set changes."""

    def __init__(
        self,
        *,
        clock: Callable[[], float],
        eject_s: float = 1.0,
        consecutive_5xx: int = 3,
        on_change: Callable[[str, bool], None] | None = None,
    ) -> None:
        self.clock = clock
        self.eject_s = eject_s
        self.consecutive_5xx = consecutive_5xx
        self.on_change = on_change
        self._records: dict[str, _Record] = {}

    def is_ejected(self, replica: str) -> bool:
        record = self._records.get(replica)
        return record is not None and record.ejected_until is not None

    def report_success(self, replica: str) -> None:
        record = self._records.get(replica)
        if record is not None:
            record.consecutive_5xx = 0

    def report_failure(self, replica: str, failure: Failure) -> bool:
        """Count one failure; True if it ejected the replica just now."""
        if failure == Failure.BUSY:
            return False
        record = self._records.setdefault(replica, _Record())
        if failure == Failure.SERVER_ERROR:
            record.consecutive_5xx += 1
            if record.consecutive_5xx < self.consecutive_5xx:
                return False
        if record.ejected_until is not None:
            record.ejected_until = max(record.ejected_until, self.clock() + self.eject_s)
            return False
        record.ejected_until = self.clock() + self.eject_s
        log.warning("ejected replica %s for %.1f s after %s", replica, self.eject_s, failure)
        self._notify(replica, ejected=True)
        return True

    def report_probe_ok(self, replica: str) -> None:
        """A passing probe re-admits an ejected replica once its ejection time is over."""
        record = self._records.get(replica)
        if record is None or record.ejected_until is None or self.clock() < record.ejected_until:
            return
        record.ejected_until = None
        record.consecutive_5xx = 0
        log.info("re-admitted replica %s after a passing probe", replica)
        self._notify(replica, ejected=False)

    def forget(self, keep: Iterable[str]) -> None:
        """Drop records of replicas that no longer exist."""
        alive = set(keep)
        for replica in [r for r in self._records if r not in alive]:
            del self._records[replica]

    def _notify(self, replica: str, *, ejected: bool) -> None:
        if self.on_change is not None:
            self.on_change(replica, ejected)


def parse_waiting(metrics_text: bytes) -> int | None:
    """The engine's waiting-queue length from its Prometheus text, if it has one; pure."""
    for line in metrics_text.splitlines():
        if line.startswith(WAITING_SERIES):
            try:
                return int(float(line.rsplit(maxsplit=1)[-1]))
            except ValueError:
                return None
    return None


def probe_round(
    replicas: Sequence[ReplicaStatus],
    *,
    is_ejected: Callable[[str], bool],
    cursor: int,
    limit: int,
) -> list[ReplicaStatus]:
    """The replicas one round probes; pure. Every one when they are ``limit`` or fewer;
    else every ejected one (each waits for a passing probe to come back) and the
    ``limit`` others from ``cursor`` on, wrapping, so that each is probed once every
    ``len(replicas) / limit`` rounds."""
    if len(replicas) <= limit:
        return list(replicas)
    ejected = [r for r in replicas if is_ejected(r.replica_id)]
    rest = [r for r in replicas if not is_ejected(r.replica_id)]
    if len(rest) <= limit:
        return ejected + rest
    start = cursor % len(rest)
    turn = rest[start : start + limit]
    return ejected + turn + rest[: limit - len(turn)]


def health_path(replica: ReplicaStatus) -> str:
    """``/health``, or the health path of an agent (its replicas record their agent)."""
    agent = replica.config.get("agent")
    path = agent.get("health_path") if isinstance(agent, dict) else None
    return path if isinstance(path, str) else "/health"


class Prober:
    """Probes replicas each ``interval_s``, at most ``max_per_round`` of them (besides
    ejected ones) a round; records waiting queues in ``waiting``."""

    def __init__(
        self,
        tracker: HealthTracker,
        replicas: Callable[[], list[ReplicaStatus]],
        *,
        interval_s: float = 1.0,
        timeout_s: float = 2.0,
        max_per_round: int = 100,
    ) -> None:
        self.tracker = tracker
        self.replicas = replicas
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self.max_per_round = max_per_round
        self.waiting: dict[str, int] = {}
        self._cursor = 0

    async def run(self, pool: ConnectionPool) -> None:
        while True:
            await self.probe_all(pool)
            await asyncio.sleep(self.interval_s)

    async def probe_all(self, pool: ConnectionPool) -> None:
        """One round: the replicas ``probe_round`` chooses, concurrently."""
        replicas = probe_round(
            self.replicas(),
            is_ejected=self.tracker.is_ejected,
            cursor=self._cursor,
            limit=self.max_per_round,
        )
        self._cursor += self.max_per_round
        await asyncio.gather(*(self.probe(pool, r) for r in replicas))

    async def probe(self, pool: ConnectionPool, replica: ReplicaStatus) -> None:
        try:
            status, _ = await pool.fetch(
                replica.url + health_path(replica), timeout_s=self.timeout_s
            )
            healthy = status == 200
        except (OSError, TimeoutError):  # the pool's errors are ConnectionError or TimeoutError
            healthy = False
        if not healthy:
            self.tracker.report_failure(replica.replica_id, Failure.PROBE)
            return
        if self.tracker.is_ejected(replica.replica_id):
            self.tracker.report_probe_ok(replica.replica_id)
        await self._read_queue(pool, replica)

    async def _read_queue(self, pool: ConnectionPool, replica: ReplicaStatus) -> None:
        """Record the engine's queue length; any failure only forgets the stale one."""
        waiting = None
        try:
            status, body = await pool.fetch(replica.url + "/metrics", timeout_s=self.timeout_s)
            if status == 200:
                waiting = parse_waiting(body)
        except (OSError, TimeoutError) as exc:
            log.debug("cannot read the metrics of %s: %r", replica.replica_id, exc)
        if waiting is None:
            self.waiting.pop(replica.replica_id, None)
        else:
            self.waiting[replica.replica_id] = waiting
