"""Replicas that failed and were stopped: what the agent remembers of them.

An apply whose new replica never becomes ready stops it (a crash loop would burn
the CPU), and with the process went every trace of what happened: ``status``
showed an empty table and a ready gateway, ``logs`` said "no running replica", and
the gateway waited its whole ``wait_for_replica_s`` for a replica nobody would
start. So the agent keeps a ``FailedReplica`` per slot (its last status and why it
failed) until a replica of that slot starts again or the environment is forgotten.
``status`` lists them, the gateway names them when it refuses a request, and
``logs`` finds their output by id.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from llmfleet.backends.base import ReplicaState, ReplicaStatus
from llmfleet.backends.local.managed import exit_words


@dataclass(frozen=True, slots=True)
class FailedReplica:
    """A replica stopped before it became ready: its status then, and why."""

    status: ReplicaStatus
    reason: str
    stopped_at: float

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status.to_json(),
            "reason": self.reason,
            "stopped_at": self.stopped_at,
        }

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> FailedReplica:
        return cls(
            status=ReplicaStatus.from_json(dict(body["status"])),
            reason=str(body["reason"]),
            stopped_at=float(body["stopped_at"]),
        )


def failure_reason(status: ReplicaStatus) -> str | None:
    """Why a replica being stopped had failed; None when it had not (it was serving,
    or ready once and stopped since); pure."""
    if status.ready_at is not None:
        return None
    times = f"{status.restarts} time{'s' if status.restarts != 1 else ''}"
    last = exit_words(status.last_exit)
    if status.state is ReplicaState.CRASH_LOOP:
        return f"crash-looping: it exited {times} without becoming ready; last it {last}"
    if status.restarts:
        return f"it exited {times} without becoming ready; last it {last}"
    if status.state is ReplicaState.BACKOFF:
        return "it could not be started (its log says why)"
    return f"it was stopped while still {status.state} (it never became ready)"


class FailedReplicas:
    """The agent's record of failed replicas, one per (environment, service, slot)."""

    def __init__(self) -> None:
        self._by_slot: dict[tuple[str, str, int], FailedReplica] = {}

    def record(self, status: ReplicaStatus, *, now: float) -> bool:
        """Remember ``status`` if it had failed; True if it was recorded."""
        reason = failure_reason(status)
        if reason is None:
            return False
        key = (status.environment, status.service, status.slot)
        self._by_slot[key] = FailedReplica(status, reason, now)
        return True

    def clear_slot(self, environment: str, service: str, slot: int) -> None:
        """A replica of this slot starts again: the old failure is history."""
        self._by_slot.pop((environment, service, slot), None)

    def keep_services(self, environment: str, services: Iterable[str]) -> None:
        """Forget the failures of services an apply removed from ``environment``."""
        kept = set(services)
        for key in [k for k in self._by_slot if k[0] == environment and k[1] not in kept]:
            del self._by_slot[key]

    def forget(self, environment: str) -> None:
        for key in [k for k in self._by_slot if k[0] == environment]:
            del self._by_slot[key]

    def clear(self) -> None:
        self._by_slot.clear()

    def of(self, environment: str | None = None) -> list[FailedReplica]:
        return [
            f
            for key, f in sorted(self._by_slot.items())
            if environment is None or key[0] == environment
        ]

    def to_json(self) -> list[dict[str, Any]]:
        return [f.to_json() for f in self.of()]

    def load(self, rows: Any) -> None:
        """Rows of a saved table; a malformed row is skipped (it only explains)."""
        for row in rows if isinstance(rows, list) else []:
            try:
                failed = FailedReplica.from_json(row)
            except (KeyError, TypeError, ValueError):
                continue
            status = failed.status
            self._by_slot[(status.environment, status.service, status.slot)] = failed
