"""Create the schema on first use; refuse databases that are not ours.

Runs in one write transaction (DDL is transactional on SQLite and PostgreSQL),
under an advisory lock on PostgreSQL, so two commands opening a fresh database
at once cannot both try to create it.
"""

from __future__ import annotations

from sqlalchemy import Connection, Engine, inspect, select, text

from llmfleet.errors import StateCorruptError, StateError
from llmfleet.state.connection import reading, writing
from llmfleet.state.tables import SCHEMA_VERSION, SERIAL_COUNTER, counters, meta, metadata

SCHEMA_LOCK_KEY = 0x6C6C6D66  # "llmf": any constant shared by every llmfleet


def ensure_schema(engine: Engine, *, where: str, lost: StateError | None = None) -> None:
    """Make sure ``engine``'s database holds our schema at a version we can read.

    A complete schema is only read, so opening never waits for a writer. An empty
    database where a state existed raises ``lost`` before anything is written: a
    silent fresh start would lose the history, and writing an empty file another
    process holds open only waits for the busy timeout.
    """
    with reading(engine) as conn:
        existing = set(inspect(conn).get_table_names())
        if existing:
            _check_ours(conn, existing, where=where)
    if not existing and lost is not None:
        raise lost
    if set(metadata.tables) <= existing:
        return
    with writing(engine) as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": SCHEMA_LOCK_KEY})
        existing = set(inspect(conn).get_table_names())  # again: another may have won
        if not existing:
            _create(conn)
            return
        _check_ours(conn, existing, where=where)
        metadata.create_all(conn, checkfirst=True)  # tables added by later versions


def _create(conn: Connection) -> None:
    metadata.create_all(conn)
    conn.execute(meta.insert().values(key="schema_version", value=str(SCHEMA_VERSION)))
    conn.execute(counters.insert().values(name=SERIAL_COUNTER, value=0))


def _check_ours(conn: Connection, existing: set[str], *, where: str) -> None:
    if meta.name not in existing:
        sample = ", ".join(sorted(existing)[:5])
        raise StateCorruptError(
            f"{where} holds tables that are not llmfleet's ({sample})",
            hint="point `state:` at an empty database or at one llmfleet created",
        )
    version = _schema_version(conn, where=where)
    if version > SCHEMA_VERSION:
        raise StateError(
            f"{where} was written by a newer llmfleet (schema {version}, "
            f"this one reads {SCHEMA_VERSION})",
            hint="upgrade llmfleet",
        )
    _check_columns(conn, existing, where=where)


def _schema_version(conn: Connection, *, where: str) -> int:
    value = conn.scalar(select(meta.c.value).where(meta.c.key == "schema_version"))
    if value is None or not value.isdigit():
        raise StateCorruptError(
            f"{where} has an llmfleet_meta table without a valid schema_version",
            hint="restore the database from a backup, or point `state:` at an empty one",
        )
    return int(value)


def _check_columns(conn: Connection, existing: set[str], *, where: str) -> None:
    inspector = inspect(conn)
    for table in metadata.sorted_tables:
        if table.name not in existing:
            continue
        found = {column["name"] for column in inspector.get_columns(table.name)}
        missing = sorted(set(table.columns.keys()) - found)
        if missing:
            raise StateCorruptError(
                f"{where}: table {table.name} lacks columns {', '.join(missing)}",
                hint="the database was changed by hand or by another program; "
                "restore it from a backup",
            )
