"""Throughput measurements: appended by bench and validation, read by ``costs``.

Functions take a ``Connection`` inside a transaction the store owns.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, RowMapping, select

from llmfleet.state.records import Measurement
from llmfleet.state.tables import measurements

FIELDS = tuple(c.name for c in measurements.columns if c.name not in ("id", "created_at", "user"))


def insert_measurements(
    conn: Connection, rows: Sequence[dict[str, Any]], *, user: str, now: datetime
) -> list[Measurement]:
    """Append ``rows`` (each with every field of ``FIELDS``); returns them as stored."""
    stored = []
    for row in rows:
        missing = sorted(set(FIELDS) - set(row))
        if missing:
            raise ValueError(f"a measurement needs {', '.join(missing)}")
        values = {key: row[key] for key in FIELDS} | {"user": user, "created_at": now}
        result = conn.execute(measurements.insert().values(**values).returning(*measurements.c))
        stored.append(to_measurement(result.mappings().one()))
    return stored


def list_measurements(
    conn: Connection, *, environment: str | None, service: str | None, limit: int
) -> list[Measurement]:
    """Newest first, optionally of one environment and one service."""
    query = select(measurements)
    if environment is not None:
        query = query.where(measurements.c.environment == environment)
    if service is not None:
        query = query.where(measurements.c.service == service)
    rows = conn.execute(query.order_by(measurements.c.id.desc()).limit(limit)).mappings()
    return [to_measurement(row) for row in rows]


def to_measurement(row: RowMapping) -> Measurement:
    return Measurement(**{**row, "id": int(row["id"])})
