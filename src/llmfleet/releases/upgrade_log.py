"""The scheduler's memory: upgrade events in the state store, read back as records.

Kept in the state, not in a file of the agent's: the state is where history,
validations and the apply lock already live, in transactions (no half-written
record after a crash), shared by every machine that applies the fleet (a CI job
running ``upgrade propose`` and the agent see the same failures), and shown by
``llmfleet history``. The events, all of environment ``production``:

- ``upgrade-check``: ``{service, engine, released (newest first), newest}``
- ``upgrade-build``: ``{service, engine, version, status: started|done|failed,
  reason, seconds}``
- ``upgrade``: the outcome of a candidate (``releases.upgrade`` writes it for
  ``upgrade run`` too): ``{service, from, to, promoted, outcome, mode, reason,
  report, proposal}``

``read_record`` is the one place that turns them into an ``UpgradeRecord``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from llmfleet.releases.context import PRODUCTION
from llmfleet.releases.scheduling import UpgradeRecord
from llmfleet.state.records import Event
from llmfleet.state.store import StateStore

CHECK = "upgrade-check"
BUILD = "upgrade-build"
OUTCOME = "upgrade"
SEARCHED = 500
KEPT_RELEASES = 50


@dataclass(frozen=True)
class Building:
    """A build that started and has not been recorded as finished."""

    version: str
    since: str


def _of(store: StateStore, kind: str, service: str) -> list[Event]:
    events = store.events(kind, limit=SEARCHED, environment=PRODUCTION)
    return [e for e in events if e.payload.get("service") == service]


def read_record(store: StateStore, service: str) -> UpgradeRecord:
    """What the state says about ``service``'s upgrades."""
    checks = _of(store, CHECK, service)
    failed: dict[str, str] = {}
    proposed: dict[str, str] = {}
    last_upgrade = None
    for event in reversed(_of(store, OUTCOME, service)):  # oldest first: newest wins
        p = event.payload
        version = str(p.get("to"))
        if p.get("promoted"):
            last_upgrade = event.created_at
            failed.pop(version, None)
        elif p.get("outcome") == "pass" and p.get("mode") == "propose":
            proposed[version] = str(p.get("proposal") or p.get("report"))
        elif p.get("outcome") != "deferred":
            failed[version] = str(p.get("reason") or "failed the gate")
    for event in _of(store, BUILD, service):
        if event.payload.get("status") == "failed":
            failed.setdefault(str(event.payload["version"]), str(event.payload.get("reason")))
    return UpgradeRecord(
        last_check=checks[0].created_at if checks else None,
        released=tuple(checks[0].payload.get("released", ())) if checks else (),
        failed=failed,
        proposed=proposed,
        last_upgrade=last_upgrade,
    )


def building(store: StateStore, service: str) -> Building | None:
    """The build of ``service`` whose start is the newest build event, if any."""
    builds = _of(store, BUILD, service)
    if builds and builds[0].payload.get("status") == "started":
        return Building(str(builds[0].payload["version"]), builds[0].created_at.isoformat())
    return None


def record(store: StateStore, kind: str, *, user: str, payload: dict[str, Any]) -> Event:
    return store.record_event(
        kind=kind, environment=PRODUCTION, serial=None, payload=payload, user=user
    )


def last_outcomes(store: StateStore, service: str, *, limit: int = 5) -> list[Event]:
    """The newest candidate outcomes and failed builds of ``service``, newest first."""
    failed_builds = [e for e in _of(store, BUILD, service) if e.payload.get("status") == "failed"]
    both = _of(store, OUTCOME, service) + failed_builds
    return sorted(both, key=lambda e: e.id, reverse=True)[:limit]
