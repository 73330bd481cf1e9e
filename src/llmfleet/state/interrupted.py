"""Applies that died half-way (kill -9, OOM killer, a reboot), recorded as interrupted.

A killed apply records nothing at its end, so it used to leave no history at all; only
its lock was left, and the next apply broke that lock with a log line. Terraform
records a failed apply; so do we: an apply notes that it starts (an event holding
its plan and its lock's token) once it holds the lock and before it changes
anything, and the next command that finds the lock of a dead process of this host
turns that note into a revision whose outcome is ``failed`` and whose error starts
with ``interrupted:``, and removes the lock, in one transaction.

A holder on another host is never judged (its processes cannot be seen from here).
Functions take a ``Connection`` inside a transaction the store owns.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from llmfleet.state import journal, locking, revisions
from llmfleet.state.records import LockInfo, Revision

STARTED = "apply-started"
INTERRUPTED = "interrupted: "
SEARCHED = 20  # start notes looked through for a lock's token


def note_start(
    conn: Connection, *, lock: LockInfo, environment: str, record: dict[str, Any], now: datetime
) -> None:
    """Record that the holder of ``lock`` starts carrying out ``record`` (kind, user,
    message, spec_hash, plan): what the next command records if it dies."""
    payload = {**record, "token": lock.token}
    journal.insert_event(
        conn, kind=STARTED, environment=environment, serial=None, payload=payload,
        user=str(record["user"]), now=now,
    )  # fmt: skip


def settle(conn: Connection, lock: LockInfo, *, now: datetime) -> Revision | None:
    """Remove the dead holder's ``lock``; record its apply as interrupted if it had
    started one (a holder killed before its note changed nothing)."""
    locking.remove_lock(conn, lock.name, token=lock.token)
    started = [
        e for e in journal.list_events(conn, kind=STARTED, environment=None, limit=SEARCHED)
        if e.payload.get("token") == lock.token
    ]  # fmt: skip
    if not started:
        return None
    note = started[0].payload
    error = (
        f"{INTERRUPTED}the {lock.purpose} of {lock.holder}, started {lock.since}, was "
        "killed before it finished; what it completed was not recorded "
        "(`llmfleet plan` shows what runs now)"
    )
    new = revisions.NewRevision(
        environment=started[0].environment, kind=note["kind"], user=note["user"],
        message=note.get("message", ""), spec_hash=note.get("spec_hash", ""), spec={},
        plan=note.get("plan", {}), outcome="failed", error=error, parent_serial=None,
    )  # fmt: skip
    return revisions.insert_revision(conn, new, expected_serial=None, now=now)
