"""What the state store hands out: frozen records, detached from the database.

Callers never see SQLAlchemy rows, so the layers above do not depend on the
schema and a record stays valid after the store is closed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

RevisionKind = Literal["apply", "destroy", "rollback", "promote", "upgrade"]
Outcome = Literal["success", "failed"]


@dataclass(frozen=True)
class Revision:
    """One recorded change of an environment, successful or not.

    ``serial`` is global across environments and only grows; ``spec`` is the
    fully resolved environment that was applied and ``plan`` the plan that was
    carried out. ``parent_serial`` names the revision a rollback restored.
    """

    serial: int
    environment: str
    kind: RevisionKind
    created_at: datetime
    user: str
    message: str
    spec_hash: str
    spec: dict[str, Any]
    plan: dict[str, Any]
    outcome: Outcome
    error: str | None
    parent_serial: int | None


@dataclass(frozen=True)
class LockInfo:
    """Who holds a named lock, since when, and why."""

    name: str
    user: str
    host: str
    pid: int
    purpose: str
    acquired_at: datetime
    token: str = field(repr=False)  # a capability to release the lock: never shown

    @property
    def holder(self) -> str:
        """The holder as people read it: ``user@host pid N``."""
        return f"{self.user}@{self.host} pid {self.pid}"

    def describe(self) -> str:
        """Who, where, doing what, since when: ``ada@box pid 7 (apply production) since ...``."""
        return f"{self.holder} ({self.purpose}) since {self.since}"

    @property
    def since(self) -> str:
        return self.acquired_at.isoformat(timespec="seconds")


@dataclass(frozen=True)
class Artifact:
    """A checksummed file llmfleet fetched or built (a model, an engine build)."""

    kind: str
    key: str
    sha256: str
    size: int
    path: str
    recorded_at: datetime


@dataclass(frozen=True)
class Event:
    """Something that happened to an environment besides an apply.

    Validations, promotions, rollbacks and upgrades are events whose ``payload``
    their own feature defines; ``serial`` ties one to a revision when it has one.
    """

    id: int
    kind: str
    environment: str
    serial: int | None
    payload: dict[str, Any]
    user: str
    created_at: datetime


@dataclass(frozen=True)
class ApiKey:
    """A gateway API key as stored: never the secret, only its hash and prefix.

    ``services`` empty means every service; ``rpm``/``tpm`` None means unlimited.
    """

    id: int
    name: str
    prefix: str
    services: tuple[str, ...]
    rpm: int | None
    tpm: int | None
    created_at: datetime
    revoked_at: datetime | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def allows(self, service: str) -> bool:
        """Whether this key may call ``service`` (an empty scope allows all)."""
        return self.active and (not self.services or service in self.services)


@dataclass(frozen=True)
class Measurement:
    """Throughput of one service at one load level, measured through its gateway.

    ``serial`` is the environment's revision when it was measured and ``runtime_hash``
    what the replicas ran (model, engine, slots, context, resources), so a figure is
    only ever used for what was measured. ``concurrency`` is None for an open-loop
    (rate) level. ``source`` is ``bench`` or ``validation``.
    """

    id: int
    environment: str
    service: str
    serial: int | None
    runtime_hash: str
    replicas: int
    source: str
    level: str
    concurrency: int | None
    duration_s: float
    requests: int
    errors: int
    input_tokens_per_s: float
    output_tokens_per_s: float
    user: str
    created_at: datetime
