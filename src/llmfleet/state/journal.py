"""Events and artifacts: small append or upsert records beside the revisions.

Functions take a ``Connection`` inside a transaction the store owns.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, RowMapping, select

from llmfleet.state.locking import insert_for
from llmfleet.state.records import Artifact, Event
from llmfleet.state.revisions import require_json
from llmfleet.state.tables import artifacts, events


def upsert_artifact(
    conn: Connection, *, kind: str, key: str, sha256: str, size: int, path: str, now: datetime
) -> Artifact:
    """Record the checksum of an artifact; a newer record of the same key replaces it."""
    values = {"sha256": sha256, "size": size, "path": path, "recorded_at": now}
    statement = insert_for(conn, artifacts).values(kind=kind, key=key, **values)
    conn.execute(statement.on_conflict_do_update(index_elements=["kind", "key"], set_=values))
    query = select(artifacts).where(artifacts.c.kind == kind, artifacts.c.key == key)
    return Artifact(**conn.execute(query).mappings().one())


def find_artifact(conn: Connection, kind: str, key: str) -> Artifact | None:
    query = select(artifacts).where(artifacts.c.kind == kind, artifacts.c.key == key)
    row = conn.execute(query).mappings().first()
    return Artifact(**row) if row else None


def insert_event(
    conn: Connection,
    *,
    kind: str,
    environment: str,
    serial: int | None,
    payload: dict[str, Any],
    user: str,
    now: datetime,
) -> Event:
    require_json(payload, what="event payload")
    values = {
        "kind": kind,
        "environment": environment,
        "serial": serial,
        "payload": payload,
        "user": user,
        "created_at": now,
    }
    row = conn.execute(events.insert().values(**values).returning(*events.c)).mappings().one()
    return to_event(row)


def list_events(
    conn: Connection, *, kind: str | None, environment: str | None, limit: int
) -> list[Event]:
    query = select(events)
    if kind is not None:
        query = query.where(events.c.kind == kind)
    if environment is not None:
        query = query.where(events.c.environment == environment)
    rows = conn.execute(query.order_by(events.c.id.desc()).limit(limit)).mappings()
    return [to_event(row) for row in rows]


def to_event(row: RowMapping) -> Event:
    return Event(**{**row, "id": int(row["id"])})
