"""From a ``state:`` URL to a configured SQLAlchemy engine; the store's I/O edge.

SQLite gets write-ahead logging (readers such as the gateway never wait for an
apply), foreign keys, a bounded busy wait, and ``BEGIN IMMEDIATE`` for write
transactions: a deferred transaction that reads and then writes can fail at
once with "database is locked" instead of waiting, so writers take the write
lock up front. PostgreSQL goes through psycopg 3 with a connect timeout and a
lock timeout, so no command hangs on an unreachable or stuck server.

A SQLite state holds key hashes and whole resolved specs, and apply and rollback act
on what it says: its file is made here, 0600 whatever the umask, and one that is a
link, another user's, or writable by others is refused, as is such a -wal, -shm or
-journal file, which SQLite would replay into it (``llmfleet.private_files``).
"""

from __future__ import annotations

import os
import random
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.pool import StaticPool

from llmfleet.errors import StateError
from llmfleet.private_files import check_private, open_private

WRITE_OPTION = "llmfleet_write"
URL_FORMS = "sqlite:///PATH (relative to the spec file) or postgresql://USER@HOST:PORT/DATABASE"
SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")


@dataclass(frozen=True)
class Target:
    """A resolved state location; ``display`` is safe to print (password masked)."""

    url: URL
    display: str
    password: str | None
    sqlite_path: Path | None
    busy_timeout_s: float
    connect_timeout_s: float

    @property
    def is_sqlite(self) -> bool:
        return self.url.get_backend_name() == "sqlite"


def resolve_target(
    text: str, *, base_dir: Path, busy_timeout_s: float, connect_timeout_s: float
) -> Target:
    """Parse a ``state:`` URL; relative SQLite paths are relative to ``base_dir``.

    Never echoes an unparseable URL: it may contain a password.
    """
    try:
        url = make_url(text)
    except ArgumentError as exc:
        raise StateError("the state URL cannot be parsed", hint=f"use {URL_FORMS}") from exc
    backend = url.get_backend_name()
    if backend == "sqlite":
        resolved, path = _sqlite_url(url, base_dir)
    elif backend in ("postgresql", "postgres"):
        resolved, path = url.set(drivername="postgresql+psycopg"), None
    else:
        raise StateError(f"unsupported state database '{backend}'", hint=f"use {URL_FORMS}")
    display = str(path) if path else url.render_as_string(hide_password=True)
    return Target(
        url=resolved,
        display=display,
        password=url.password or None,
        sqlite_path=path,
        busy_timeout_s=busy_timeout_s,
        connect_timeout_s=connect_timeout_s,
    )


def _sqlite_url(url: URL, base_dir: Path) -> tuple[URL, Path | None]:
    database = url.database or ""
    if database in ("", ":memory:"):
        return url.set(drivername="sqlite+pysqlite", database=":memory:"), None
    path = (base_dir / database).absolute()
    return url.set(drivername="sqlite+pysqlite", database=str(path)), path


def create_state_engine(target: Target) -> Engine:
    """An engine for ``target``; creates a SQLite file's parent folders."""
    if target.is_sqlite:
        return _sqlite_engine(target)
    connect_args: dict[str, Any] = {
        # libpq wants whole seconds and treats values under 2 as 2.
        "connect_timeout": max(2, round(target.connect_timeout_s)),
        "application_name": "llmfleet",
        "options": f"-c lock_timeout={int(target.busy_timeout_s * 1000)}",
    }
    # hide_parameters: bound values (key hashes, specs) never reach error messages.
    return create_engine(
        target.url, connect_args=connect_args, pool_pre_ping=True, hide_parameters=True
    )


def _sqlite_engine(target: Target) -> Engine:
    path = target.sqlite_path
    if path is not None:
        _make_private_file(path)
    connect_args = {"timeout": target.busy_timeout_s, "check_same_thread": False}
    # An in-memory database lives as long as its one connection.
    pool = {"poolclass": StaticPool} if path is None else {}
    engine = create_engine(target.url, connect_args=connect_args, hide_parameters=True, **pool)
    configure = _configure_sqlite(wal=path is not None, busy_timeout_s=target.busy_timeout_s)
    event.listen(engine, "connect", configure)
    event.listen(engine, "begin", _begin_sqlite)
    return engine


def _make_private_file(path: Path) -> None:
    """Create the database file (and its folder, 0700, when it is new) for SQLite,
    which would make it 0644 and follow a link; refuse one others could have written."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise StateError(
            f"cannot create the folder for the state database {path}: {exc.strerror}",
            hint="check the permissions of that folder or point `state:` elsewhere",
        ) from exc
    try:
        os.close(open_private(path, os.O_RDWR | os.O_CREAT))
    except OSError as exc:
        raise StateError(
            f"cannot open the state database {path}: {exc.strerror}",
            hint="check the permissions of that file or point `state:` elsewhere",
        ) from exc
    for suffix in SQLITE_SIDE_FILES:
        check_private(path.with_name(path.name + suffix))


def _configure_sqlite(*, wal: bool, busy_timeout_s: float) -> Any:
    def configure(dbapi_connection: sqlite3.Connection, _record: Any) -> None:
        # Take BEGIN away from the sqlite3 module so SQLAlchemy's transaction
        # boundaries are the real ones (see _begin_sqlite).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA foreign_keys=ON")
            if wal:
                _enter_wal(cursor, busy_timeout_s)
        finally:
            cursor.close()

    return configure


def _enter_wal(cursor: sqlite3.Cursor, busy_timeout_s: float) -> None:
    """Switch to write-ahead logging, retrying within the busy timeout.

    Two connections turning a new file into WAL at once can deadlock on its locks;
    SQLite then fails one at once, without its busy wait, and a retry succeeds
    (the database is WAL from then on, which every later open only reads).
    """
    deadline = time.monotonic() + busy_timeout_s
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
        time.sleep(random.uniform(0.005, 0.05))  # noqa: S311 (jitter, not a secret)


def _begin_sqlite(conn: Connection) -> None:
    immediate = conn.get_execution_options().get(WRITE_OPTION, False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


@contextmanager
def writing(engine: Engine) -> Iterator[Connection]:
    """A write transaction: committed on success, rolled back on any exception."""
    with engine.connect() as conn:
        conn.execution_options(**{WRITE_OPTION: True})
        with conn.begin():
            yield conn


@contextmanager
def reading(engine: Engine) -> Iterator[Connection]:
    """A read transaction: one consistent snapshot, never committed."""
    with engine.connect() as conn, conn.begin():
        yield conn
