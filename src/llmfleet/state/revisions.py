"""Reading and writing revisions inside a transaction the caller owns.

Functions here take a ``Connection`` already in a transaction; the store opens
it, so a revision and its serial are written together or not at all.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Connection, RowMapping, func, select

from llmfleet.errors import StalePlanError, StateError
from llmfleet.state.records import Outcome, Revision, RevisionKind
from llmfleet.state.tables import OUTCOMES, REVISION_KINDS, SERIAL_COUNTER, counters, revisions


@dataclass(frozen=True)
class NewRevision:
    """What a caller asks to record; serial and time are assigned on insert."""

    environment: str
    kind: RevisionKind
    user: str
    message: str
    spec_hash: str
    spec: dict[str, Any]
    plan: dict[str, Any]
    outcome: Outcome
    error: str | None
    parent_serial: int | None

    def __post_init__(self) -> None:
        # Literal types guard typed callers; this guards the rest at the edge.
        if self.kind not in REVISION_KINDS:
            raise ValueError(f"revision kind must be one of {REVISION_KINDS}, got {self.kind!r}")
        if self.outcome not in OUTCOMES:
            raise ValueError(f"outcome must be one of {OUTCOMES}, got {self.outcome!r}")
        require_json(self.spec, what="spec")
        require_json(self.plan, what="plan")


def require_json(value: object, *, what: str) -> None:
    """Refuse a value the JSON columns cannot hold, before any transaction starts.

    Drivers fail differently on it (SQLAlchemy wraps the TypeError, psycopg
    does not), so the check is ours and the error the same on both.
    """
    try:
        json.dumps(value)
    except (TypeError, ValueError) as exc:
        raise StateError(f"cannot store the {what}: it is not plain JSON ({exc})") from exc


def insert_revision(
    conn: Connection, new: NewRevision, *, expected_serial: int | None, now: datetime
) -> Revision:
    """Check freshness, take the next global serial and insert, in ``conn``'s transaction."""
    counter = lock_counter(conn)
    current = current_serial(conn, new.environment)
    if expected_serial is not None and current != expected_serial:
        raise StalePlanError(
            f"the plan was made from serial {expected_serial} but the state of "
            f"'{new.environment}' is now at {current}; run plan again"
        )
    highest = conn.scalar(select(func.max(revisions.c.serial))) or 0
    serial = max(counter, highest) + 1
    row = {**new.__dict__, "serial": serial, "created_at": now}
    conn.execute(revisions.insert().values(**row))
    advance_counter(conn, serial)
    return get_revision(conn, serial)  # as stored: JSON round-tripped, UTC


def lock_counter(conn: Connection) -> int:
    """The serial counter, row-locked until the transaction ends (PostgreSQL).

    SQLite ignores FOR UPDATE; there BEGIN IMMEDIATE already serialises writers.
    """
    query = select(counters.c.value).where(counters.c.name == SERIAL_COUNTER).with_for_update()
    value = conn.scalar(query)
    if value is None:
        conn.execute(counters.insert().values(name=SERIAL_COUNTER, value=0))
        return 0
    return int(value)


def advance_counter(conn: Connection, serial: int) -> None:
    """Move the counter to ``serial``; the last write of ``insert_revision``."""
    conn.execute(counters.update().where(counters.c.name == SERIAL_COUNTER).values(value=serial))


def current_serial(conn: Connection, environment: str) -> int:
    query = select(func.max(revisions.c.serial)).where(revisions.c.environment == environment)
    return int(conn.scalar(query) or 0)


def latest_revision(
    conn: Connection, environment: str, *, successful_only: bool
) -> Revision | None:
    query = select(revisions).where(revisions.c.environment == environment)
    if successful_only:
        query = query.where(revisions.c.outcome == "success")
    row = conn.execute(query.order_by(revisions.c.serial.desc()).limit(1)).mappings().first()
    return to_revision(row) if row else None


def get_revision(conn: Connection, serial: int) -> Revision:
    row = conn.execute(select(revisions).where(revisions.c.serial == serial)).mappings().first()
    if row is None:
        raise StateError(f"there is no revision {serial}; {nearest_serials(conn, serial)}")
    return to_revision(row)


def nearest_serials(conn: Connection, serial: int) -> str:
    """A phrase naming up to two existing serials on each side of ``serial``."""
    column = revisions.c.serial
    below = conn.scalars(select(column).where(column < serial).order_by(column.desc()).limit(2))
    above = conn.scalars(select(column).where(column > serial).order_by(column).limit(2))
    nearest = sorted([*below, *above])
    if not nearest:
        return "the state has no revisions yet"
    return "nearest existing: " + ", ".join(str(s) for s in nearest)


def list_revisions(conn: Connection, environment: str | None, limit: int) -> list[Revision]:
    query = select(revisions)
    if environment is not None:
        query = query.where(revisions.c.environment == environment)
    rows = conn.execute(query.order_by(revisions.c.serial.desc()).limit(limit)).mappings()
    return [to_revision(row) for row in rows]


def to_revision(row: RowMapping) -> Revision:
    return Revision(
        serial=int(row["serial"]),
        environment=row["environment"],
        kind=cast(RevisionKind, row["kind"]),
        created_at=row["created_at"],
        user=row["user"],
        message=row["message"],
        spec_hash=row["spec_hash"],
        spec=row["spec"],
        plan=row["plan"],
        outcome=cast(Outcome, row["outcome"]),
        error=row["error"],
        parent_serial=row["parent_serial"],
    )
