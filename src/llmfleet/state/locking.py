"""Named locks as rows, so two applies never run at once on any backend.

A lock is a row keyed by name; taking it is an INSERT that does nothing on
conflict, which both SQLite and PostgreSQL make atomic. Each acquisition gets a
random token and release deletes by token, so a process whose lock was broken
or force-unlocked cannot release the next holder's lock.

A lock whose holder ran on this host and whose pid is gone (the process
crashed) is broken automatically. A holder on another host is never judged:
we cannot see its processes, so a person has to ``llmfleet unlock`` it.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Insert, Table, delete, select
from sqlalchemy.dialects import postgresql, sqlite

from llmfleet.errors import LockHeldError, StateError
from llmfleet.state.records import LockInfo
from llmfleet.state.tables import locks

CLAIM_ATTEMPTS = 3


@dataclass(frozen=True)
class Identity:
    """Who takes a lock: the user, this host and this process."""

    user: str
    host: str
    pid: int

    @classmethod
    def of_this_process(cls, user: str) -> Identity:
        return cls(user=user, host=socket.gethostname(), pid=os.getpid())


def claim(conn: Connection, *, name: str, purpose: str, me: Identity, now: datetime) -> LockInfo:
    """Take lock ``name`` in ``conn``'s transaction, breaking a stale one.

    Raises ``LockHeldError`` naming the live holder and since when it holds it.
    """
    for _ in range(CLAIM_ATTEMPTS):
        mine = _insert(conn, name=name, purpose=purpose, me=me, now=now)
        if mine is not None:
            return mine
        current = read_lock(conn, name)
        if current is None:
            continue  # released between our insert and our read
        if not is_stale(current, me):
            raise LockHeldError(name=name, holder=current.holder, since=current.since)
        logging.getLogger(__name__).warning(
            "breaking the stale lock '%s' of %s (that process is gone)", name, current.holder
        )
        remove_lock(conn, name, token=current.token)
    raise StateError(f"the state lock '{name}' changed hands too often to take; retry")


def _insert(
    conn: Connection, *, name: str, purpose: str, me: Identity, now: datetime
) -> LockInfo | None:
    info = LockInfo(
        name=name,
        user=me.user,
        host=me.host,
        pid=me.pid,
        purpose=purpose,
        acquired_at=now,
        token=secrets.token_hex(16),
    )
    statement = insert_for(conn, locks).values(**info.__dict__)
    # RETURNING, not rowcount: drivers disagree on rowcount after ON CONFLICT.
    statement = statement.on_conflict_do_nothing(index_elements=["name"]).returning(locks.c.token)
    return info if conn.execute(statement).scalar_one_or_none() is not None else None


def insert_for(conn: Connection, table: Table) -> Any:
    """The dialect's INSERT, which (unlike the generic one) knows ON CONFLICT."""
    dialect_insert: Insert
    if conn.dialect.name == "postgresql":
        dialect_insert = postgresql.insert(table)
    else:
        dialect_insert = sqlite.insert(table)
    return dialect_insert


def read_lock(conn: Connection, name: str) -> LockInfo | None:
    row = conn.execute(select(locks).where(locks.c.name == name)).mappings().first()
    return LockInfo(**row) if row else None


def remove_lock(conn: Connection, name: str, *, token: str | None = None) -> bool:
    """Delete lock ``name`` (only the acquisition ``token`` when given)."""
    statement = delete(locks).where(locks.c.name == name)
    if token is not None:
        statement = statement.where(locks.c.token == token)
    return conn.execute(statement).rowcount > 0


def break_lock(conn: Connection, name: str, *, me: Identity, force: bool) -> LockInfo | None:
    """Remove lock ``name`` for a person who says its holder is gone; returns it.
    Raises ``refusal_to_break``'s error when it must not be broken."""
    lock = read_lock(conn, name)
    if lock is None:
        return None
    refusal = refusal_to_break(lock, me, force=force)
    if refusal is not None:
        raise refusal
    remove_lock(conn, name, token=lock.token)
    return lock


def refusal_to_break(lock: LockInfo, me: Identity, *, force: bool) -> StateError | None:
    """Why ``lock`` must not be broken, or None. A holder alive on this host never is
    (two applies would interleave their changes and one would record a success over a
    mixed runtime); one on another host only with ``force``, since its processes
    cannot be seen from here."""
    if lock.host == me.host and pid_alive(lock.pid):
        return StateError(
            f"the state lock '{lock.name}' is held by {lock.describe()}, a process still "
            "running on this host",
            hint=f"wait for it to finish; if it hangs, stop it (`kill {lock.pid}`), and the "
            "next command takes the lock",
        )
    if lock.host != me.host and not force:
        return StateError(
            f"the state lock '{lock.name}' is held by {lock.describe()}, on another host: "
            "llmfleet cannot see whether it still runs",
            hint=f"if that command is surely gone from {lock.host}, "
            "`llmfleet unlock --yes --force`",
        )
    return None


def is_stale(lock: LockInfo, me: Identity) -> bool:
    """Whether ``lock`` belongs to a process of this host that no longer runs."""
    return lock.host == me.host and lock.pid != me.pid and not pid_alive(lock.pid)


def pid_alive(pid: int) -> bool:
    if pid <= 0:  # kill(0) would signal our own process group
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by another user
        return True
    return True
