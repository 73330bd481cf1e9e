"""The state schema as SQLAlchemy Core tables, shared by SQLite and PostgreSQL.

Every table is prefixed ``llmfleet_`` so a PostgreSQL database can be told apart
from one that belongs to another program. ``llmfleet_meta`` holds the schema
version, so a later llmfleet can tell which migration a database needs.

Tables that later features fill are created now (events carry validations,
promotions, rollbacks and upgrades; artifacts carry model and engine checksums)
so their arrival does not need a migration.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)
from sqlalchemy.types import TypeDecorator

SCHEMA_VERSION = 1
SERIAL_COUNTER = "revision_serial"

REVISION_KINDS = ("apply", "destroy", "rollback", "promote", "upgrade")
OUTCOMES = ("success", "failed")


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend.

    SQLite has no timezone type and hands back naive values; storing UTC and
    re-attaching UTC on the way out keeps comparisons and ISO output honest.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("state datetimes must be timezone-aware")
        return value.astimezone(UTC)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)  # type: ignore[no-any-return]
        return value.astimezone(UTC)  # type: ignore[no-any-return]


def _in(values: tuple[str, ...]) -> str:
    return "(" + ", ".join(f"'{v}'" for v in values) + ")"


metadata = MetaData()

meta = Table(
    "llmfleet_meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

# One row per counter; record_revision locks it (SELECT ... FOR UPDATE) so two
# PostgreSQL writers cannot hand out the same serial.
counters = Table(
    "llmfleet_counters",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", BigInteger, nullable=False),
)

revisions = Table(
    "llmfleet_revisions",
    metadata,
    Column("serial", BigInteger, primary_key=True, autoincrement=False),
    Column("environment", String(128), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("user", String(255), nullable=False),
    Column("message", Text, nullable=False),
    Column("spec_hash", String(128), nullable=False),
    Column("spec", JSON, nullable=False),
    Column("plan", JSON, nullable=False),
    Column("outcome", String(16), nullable=False),
    Column("error", Text, nullable=True),
    Column("parent_serial", BigInteger, ForeignKey("llmfleet_revisions.serial"), nullable=True),
    CheckConstraint(f"kind IN {_in(REVISION_KINDS)}", name="ck_revision_kind"),
    CheckConstraint(f"outcome IN {_in(OUTCOMES)}", name="ck_revision_outcome"),
    Index("ix_revisions_environment_serial", "environment", "serial"),
)

locks = Table(
    "llmfleet_locks",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("token", String(64), nullable=False),
    Column("user", String(255), nullable=False),
    Column("host", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("purpose", Text, nullable=False),
    Column("acquired_at", UTCDateTime, nullable=False),
)

artifacts = Table(
    "llmfleet_artifacts",
    metadata,
    Column("kind", String(32), primary_key=True),
    Column("key", String(512), primary_key=True),
    Column("sha256", String(64), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("path", Text, nullable=False),
    Column("recorded_at", UTCDateTime, nullable=False),
)

events = Table(
    "llmfleet_events",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("kind", String(64), nullable=False),
    Column("environment", String(128), nullable=False),
    Column("serial", BigInteger, ForeignKey("llmfleet_revisions.serial"), nullable=True),
    Column("payload", JSON, nullable=False),
    Column("user", String(255), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Index("ix_events_kind_id", "kind", "id"),
)

api_keys = Table(
    "llmfleet_api_keys",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("name", String(128), nullable=False),
    Column("prefix", String(16), nullable=False),
    Column("secret_sha256", String(64), nullable=False, unique=True),
    Column("services", JSON, nullable=False),
    Column("rpm", Integer, nullable=True),
    Column("tpm", Integer, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("revoked_at", UTCDateTime, nullable=True),
)

# Throughput measured by `llmfleet bench` and the validation speed suites, one row per
# load level: what `llmfleet costs` turns into a price per million tokens. Added after
# schema 1 was released; `ensure_schema` creates it in an existing database.
measurements = Table(
    "llmfleet_measurements",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("environment", String(128), nullable=False),
    Column("service", String(128), nullable=False),
    Column("serial", BigInteger, nullable=True),
    Column("runtime_hash", String(64), nullable=False),
    Column("replicas", Integer, nullable=False),
    Column("source", String(32), nullable=False),
    Column("level", String(32), nullable=False),
    Column("concurrency", Integer, nullable=True),
    Column("duration_s", Float, nullable=False),
    Column("requests", Integer, nullable=False),
    Column("errors", Integer, nullable=False),
    Column("input_tokens_per_s", Float, nullable=False),
    Column("output_tokens_per_s", Float, nullable=False),
    Column("user", String(255), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Index("ix_measurements_environment_service_id", "environment", "service", "id"),
)

# A name is unique among active keys only: a revoked key's name may be reused.
Index(
    "uq_api_keys_active_name",
    api_keys.c.name,
    unique=True,
    sqlite_where=api_keys.c.revoked_at.is_(None),
    postgresql_where=api_keys.c.revoked_at.is_(None),
)
