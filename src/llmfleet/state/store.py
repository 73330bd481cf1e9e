"""``StateStore``: the recorded history of a fleet, on SQLite or PostgreSQL.

This is the state's one public door and its error boundary: every method runs
in its own transaction and turns database exceptions into ``StateError``s. The
work itself lives in small modules (``revisions``, ``locking``, ``keys``,
``journal``) that take a connection, so each write is all or nothing.

Only apply writes revisions; it holds ``lock("apply")`` while it runs and
records the outcome with the serial its plan was built from, so a stale plan is
refused inside the same transaction that would have recorded it.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from sqlalchemy import Connection, Engine

from llmfleet.errors import FleetError, StateCorruptError, StateError
from llmfleet.settings import account_name
from llmfleet.state import interrupted, journal, keys, locking, measurements, revisions
from llmfleet.state.connection import (
    Target,
    create_state_engine,
    reading,
    resolve_target,
    writing,
)
from llmfleet.state.locking import Identity
from llmfleet.state.records import (
    ApiKey,
    Artifact,
    Event,
    LockInfo,
    Measurement,
    Outcome,
    Revision,
    RevisionKind,
)
from llmfleet.state.schema import ensure_schema
from llmfleet.state.snapshots import Shelf, holds_no_tables
from llmfleet.state.translate import _no_recovery, translating

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


def current_user() -> str:
    """The lock holder's name: the same account that history records (settings)."""
    return account_name()


class StateStore:
    """The state database of one fleet. Synchronous; safe to share between threads."""

    def __init__(
        self,
        *,
        engine: Engine | None,
        target: Target,
        identity: Identity,
        clock: Clock,
        shelf: Shelf | None = None,
    ):
        self._engine: Engine = engine  # type: ignore[assignment]  # set by open() at once
        self._target = target
        self._identity = identity
        self._clock = clock
        self._shelf = shelf
        self.settled: Revision | None = None  # an interrupted apply recorded at open

    @classmethod
    def open(
        cls,
        url: str,
        *,
        base_dir: Path,
        user: str | None = None,
        busy_timeout_s: float = 10.0,
        connect_timeout_s: float = 5.0,
        clock: Clock = utc_now,
        settle: bool = True,
    ) -> StateStore:
        """Open (and on first use create) the state at ``url``.

        With ``settle`` (the CLI), an apply of this host that died holding the lock is
        recorded as interrupted first (``settle_interrupted``).

        ``sqlite:///relative`` is relative to ``base_dir``, the spec's folder.
        ``user`` names lock holders (default: the login name). Waits for a busy
        database at most ``busy_timeout_s``; for a connection ``connect_timeout_s``.
        """
        target = resolve_target(
            url, base_dir=base_dir, busy_timeout_s=busy_timeout_s,
            connect_timeout_s=connect_timeout_s,
        )  # fmt: skip
        shelf = Shelf.beside(target.sqlite_path) if target.sqlite_path else None
        store = cls(
            engine=None, target=target, identity=Identity.of_this_process(user or current_user()),
            clock=clock, shelf=shelf,
        )  # fmt: skip
        with store._translating():
            store._engine = engine = create_state_engine(target)
            try:
                lost = store._lost_state()
                if lost and target.sqlite_path and holds_no_tables(target.sqlite_path):
                    raise lost
                ensure_schema(engine, where=target.display, lost=lost)
                if settle:
                    store.settled = store.settle_interrupted()
            except BaseException:
                engine.dispose()
                raise
        return store

    @property
    def where(self) -> str:
        """The database as it may be shown: a file path, or the URL without password."""
        return self._target.display

    @property
    def host(self) -> str:
        """This machine's name, as lock holders are recorded."""
        return self._identity.host

    def close(self) -> None:
        self._engine.dispose()

    def __enter__(self) -> StateStore:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _translating(self) -> AbstractContextManager[None]:
        recovery = self._shelf.lost_state_hint if self._shelf else _no_recovery
        return translating(self._target, recovery)

    def _lost_state(self) -> StateCorruptError | None:
        """The error for an empty database beside snapshots (a state existed); see
        ``snapshots`` for why snapshots are the mark of a state that existed."""
        hint = self._shelf.lost_state_hint() if self._shelf else None
        if hint is None:
            return None
        return StateCorruptError(
            f"the state database {self.where} is empty (truncated or deleted), but it held "
            "a state: no command will start it again from serial 0",
            hint=hint,
        )

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        with self._translating(), writing(self._engine) as conn:
            yield conn

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with self._translating(), reading(self._engine) as conn:
            yield conn

    def _snapshot(self) -> None:
        """Keep a copy of the state just written (SQLite files only). A failed copy
        (disk full) is logged, never fails the write it follows: that is committed."""
        if self._shelf is None:
            return
        try:
            with self._engine.connect() as conn:
                raw = conn.connection.driver_connection
                assert isinstance(raw, sqlite3.Connection)
                self._shelf.take(raw)
        except (OSError, sqlite3.Error, FleetError) as exc:
            logging.getLogger(__name__).warning(
                "could not keep a snapshot of the state in %s: %s", self._shelf.folder, exc
            )

    # -- revisions -----------------------------------------------------------

    def current_serial(self, environment: str) -> int:
        """The serial of ``environment``'s latest revision (failed ones too); 0 if none."""
        with self._read() as conn:
            return revisions.current_serial(conn, environment)

    def latest_revision(self, environment: str, *, successful_only: bool = True) -> Revision | None:
        with self._read() as conn:
            return revisions.latest_revision(conn, environment, successful_only=successful_only)

    def get_revision(self, serial: int) -> Revision:
        """The revision ``serial``; an unknown one is a ``StateError`` naming its neighbours."""
        with self._read() as conn:
            return revisions.get_revision(conn, serial)

    def revisions(self, environment: str | None = None, limit: int = 50) -> list[Revision]:
        """Revisions newest first, of one environment or of all."""
        with self._read() as conn:
            return revisions.list_revisions(conn, environment, limit)

    def record_revision(
        self,
        *,
        environment: str,
        kind: RevisionKind,
        user: str,
        message: str,
        spec_hash: str,
        spec: dict[str, Any],
        plan: dict[str, Any],
        outcome: Outcome,
        error: str | None = None,
        parent_serial: int | None = None,
        expected_serial: int | None,
    ) -> Revision:
        """Record a revision under the next global serial, all in one transaction.

        With ``expected_serial`` (the serial the plan was built from) a state
        that moved on since is refused with ``StalePlanError`` and nothing is written.
        """
        new = revisions.NewRevision(
            environment=environment, kind=kind, user=user, message=message,
            spec_hash=spec_hash, spec=spec, plan=plan, outcome=outcome, error=error,
            parent_serial=parent_serial,
        )  # fmt: skip
        with self._write() as conn:
            revision = revisions.insert_revision(
                conn, new, expected_serial=expected_serial, now=self._clock()
            )
        self._snapshot()
        return revision

    # -- locks ---------------------------------------------------------------

    @contextmanager
    def lock(self, name: str = "apply", *, purpose: str) -> Iterator[LockInfo]:
        """Hold lock ``name`` for the block; released even when the block raises.

        Raises ``LockHeldError`` (holder and since) when a live process holds it;
        a lock left by a dead process of this host is broken and taken (its apply
        recorded as interrupted first, see ``settle_interrupted``).
        """
        self.settle_interrupted(name)
        now = self._clock()
        with self._write() as conn:
            info = locking.claim(conn, name=name, purpose=purpose, me=self._identity, now=now)
        try:
            yield info
        finally:
            with self._write() as conn:
                locking.remove_lock(conn, name, token=info.token)

    def note_apply_started(
        self,
        lock: LockInfo,
        *,
        environment: str,
        kind: RevisionKind,
        user: str,
        message: str,
        spec_hash: str,
        plan: dict[str, Any],
    ) -> None:
        """Note, under ``lock``, that an apply starts changing the runtime, so that the
        next command can record it as interrupted if this process dies."""
        record = {"kind": kind, "user": user, "message": message, "spec_hash": spec_hash,
                  "plan": plan}  # fmt: skip
        with self._write() as conn:
            interrupted.note_start(
                conn, lock=lock, environment=environment, record=record, now=self._clock()
            )

    def settle_interrupted(self, name: str = "apply") -> Revision | None:
        """Record the apply of a dead process of this host that holds lock ``name`` as
        interrupted, and remove its lock; returns that revision, if one was recorded.
        Cheap when there is nothing to settle: one read."""
        held = self.lock_info(name)
        if held is None or not locking.is_stale(held, self._identity):
            return None
        with self._write() as conn:
            again = locking.read_lock(conn, name)
            if again is None or again.token != held.token:
                return None  # settled by another command meanwhile
            settled = interrupted.settle(conn, held, now=self._clock())
        if settled is not None:
            self._snapshot()
        return settled

    def lock_info(self, name: str = "apply") -> LockInfo | None:
        with self._read() as conn:
            return locking.read_lock(conn, name)

    def break_lock(self, name: str = "apply", *, force: bool = False) -> LockInfo | None:
        """Remove lock ``name`` when its holder is gone (``force``: or on another host);
        refused for a live holder on this host. Returns what was removed, if anything."""
        with self._write() as conn:
            return locking.break_lock(conn, name, me=self._identity, force=force)

    def refusal_to_break(self, lock: LockInfo, *, force: bool = False) -> StateError | None:
        """Why ``break_lock`` would refuse ``lock`` (asked before a person confirms)."""
        return locking.refusal_to_break(lock, self._identity, force=force)

    def force_unlock(self, name: str = "apply") -> LockInfo | None:
        """Remove lock ``name`` whoever holds it; returns what was removed, if anything."""
        with self._write() as conn:
            held = locking.read_lock(conn, name)
            if held is not None:
                locking.remove_lock(conn, name)
            return held

    # -- artifacts and events ------------------------------------------------

    def record_artifact(
        self, *, kind: str, key: str, sha256: str, size: int, path: str
    ) -> Artifact:
        """Record (or replace) the checksum of a ``model`` or ``engine`` artifact."""
        with self._write() as conn:
            return journal.upsert_artifact(
                conn, kind=kind, key=key, sha256=sha256, size=size, path=path, now=self._clock()
            )

    def artifact(self, kind: str, key: str) -> Artifact | None:
        with self._read() as conn:
            return journal.find_artifact(conn, kind, key)

    def record_event(
        self, *, kind: str, environment: str, serial: int | None, payload: dict[str, Any], user: str
    ) -> Event:
        """Append an event (validation, promotion, rollback, upgrade...)."""
        with self._write() as conn:
            return journal.insert_event(
                conn, kind=kind, environment=environment, serial=serial, payload=payload,
                user=user, now=self._clock(),
            )  # fmt: skip

    def events(
        self, kind: str | None = None, limit: int = 50, *, environment: str | None = None
    ) -> list[Event]:
        """Events newest first, optionally of one kind and one environment."""
        with self._read() as conn:
            return journal.list_events(conn, kind=kind, environment=environment, limit=limit)

    # -- measurements ----------------------------------------------------------

    def record_measurements(
        self, rows: Sequence[dict[str, Any]], *, user: str
    ) -> list[Measurement]:
        """Append throughput measurements (one per load level), all in one transaction."""
        with self._write() as conn:
            return measurements.insert_measurements(conn, rows, user=user, now=self._clock())

    def measurements(
        self, *, environment: str | None = None, service: str | None = None, limit: int = 10_000
    ) -> list[Measurement]:
        """Measurements newest first, of one environment and service or of all."""
        with self._read() as conn:
            return measurements.list_measurements(
                conn, environment=environment, service=service, limit=limit
            )

    # -- API keys --------------------------------------------------------------

    def create_key(
        self, *, name: str, services: Sequence[str], rpm: int | None, tpm: int | None
    ) -> tuple[ApiKey, str]:
        """Create a key; returns it and its secret, which is shown once and never stored."""
        with self._write() as conn:
            created = keys.insert_key(
                conn, name=name, services=services, rpm=rpm, tpm=tpm, now=self._clock()
            )
        self._snapshot()
        return created

    def list_keys(self) -> list[ApiKey]:
        """Every key, revoked ones too, oldest first; never a secret."""
        with self._read() as conn:
            return keys.all_keys(conn)

    def revoke_key(self, key: int | str) -> ApiKey:
        """Revoke a key by id, display prefix or active name."""
        with self._write() as conn:
            revoked = keys.revoke(conn, key, now=self._clock())
        self._snapshot()
        return revoked

    def verify_key(self, secret: str) -> ApiKey | None:
        """The active key with this secret, or None."""
        with self._read() as conn:
            return keys.verify(conn, secret)
