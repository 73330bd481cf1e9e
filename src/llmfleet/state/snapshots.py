"""Snapshots of a SQLite state beside it, and the way back when the state is lost.

A truncated, garbled or deleted ``state.db`` used to be opened as a new, empty
database: history, API keys and serials silently started again at 0. So after each
successful write of a revision or a key, the store copies the database (SQLite's
online backup, one consistent view even while the gateway reads it) into
``state.db.snapshots/serial-NNNNNNNN.db``: 0600 files in a 0700 folder, written
to a temporary file and renamed, so a snapshot is whole or absent. The last
``KEEP`` serials are kept.

**How llmfleet knows that a state existed**: the snapshot folder holds at least
one snapshot. A database with no tables beside such a folder is a lost state, and
every command stops with the snapshot to restore; to start a new, empty state on
purpose, move the snapshot folder away too. (The first use has no snapshots, so it
still creates the state.)

PostgreSQL keeps no snapshots here: its server's own backups (pg_dump, point-in-time
recovery) are the way back, and a database llmfleet did not create is refused as before.

Side effects: reads and writes files beside the database; nothing here is pure.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
from contextlib import closing, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from llmfleet.errors import LockHeldError, StateError
from llmfleet.private_files import check_private, open_private, private_folder
from llmfleet.state.locking import Identity, is_stale
from llmfleet.state.records import LockInfo

KEEP = 10
PREFIX, SUFFIX = "serial-", ".db"
SIDE_FILES = ("-wal", "-shm", "-journal")


@dataclass(frozen=True)
class Snapshot:
    """One copy of the state, as it was after the write that made ``serial``."""

    serial: int
    path: Path
    taken_at: datetime
    size: int


@dataclass(frozen=True)
class Shelf:
    """The snapshot folder of one SQLite database."""

    folder: Path
    keep: int = KEEP

    @classmethod
    def beside(cls, database: Path, *, keep: int = KEEP) -> Shelf:
        return cls(database.with_name(database.name + ".snapshots"), keep)

    def snapshots(self) -> list[Snapshot]:
        """Every snapshot, oldest serial first; none when the folder is missing."""
        found: list[Snapshot] = []
        with suppress(FileNotFoundError):
            for path in self.folder.iterdir():
                serial = _serial_of(path.name)
                if serial is not None:
                    info = path.stat()
                    taken = datetime.fromtimestamp(info.st_mtime, UTC)
                    found.append(Snapshot(serial, path, taken, info.st_size))
        return sorted(found, key=lambda s: s.serial)

    def latest(self) -> Snapshot | None:
        every = self.snapshots()
        return every[-1] if every else None

    def find(self, serial: int | None) -> Snapshot:
        """The snapshot of ``serial`` (the latest when None); a StateError names the others."""
        every = self.snapshots()
        if not every:
            raise StateError(f"there are no state snapshots in {self.folder}")
        if serial is None:
            return every[-1]
        for snapshot in every:
            if snapshot.serial == serial:
                return snapshot
        kept = ", ".join(str(s.serial) for s in every)
        raise StateError(f"there is no snapshot of serial {serial}; kept: {kept}")

    def take(self, source: sqlite3.Connection) -> Snapshot:
        """Copy ``source`` into a new snapshot (named by its serial), then prune."""
        private_folder(self.folder)
        temporary = self.folder / f".taking-{os.getpid()}{SUFFIX}"
        os.close(open_private(temporary, os.O_RDWR | os.O_CREAT | os.O_TRUNC))
        try:
            serial = _copy_without_locks(source, temporary)
            _sync(temporary)
            final = self.folder / f"{PREFIX}{serial:08d}{SUFFIX}"
            temporary.replace(final)
        finally:
            temporary.unlink(missing_ok=True)
        _sync(self.folder)
        self._prune()
        return self.find(serial)

    def _prune(self) -> None:
        for old in self.snapshots()[: -self.keep]:
            old.path.unlink(missing_ok=True)

    def lost_state_hint(self) -> str | None:
        """How to get the state back, when snapshots exist; None otherwise."""
        latest = self.latest()
        if latest is None:
            return None
        when = latest.taken_at.isoformat(timespec="seconds")
        return (
            f"`llmfleet state restore {latest.serial}` brings back the snapshot of serial "
            f"{latest.serial} taken {when} (`llmfleet state restore --list` shows all "
            f"{len(self.snapshots())}; the current file is kept aside); to start a new, "
            f"empty state on purpose, move {self.folder} away too"
        )


def holds_no_tables(database: Path) -> bool:
    """Whether a SQLite file is empty, found without the write that setting its journal
    mode would need (a write waits for the busy timeout when another process, such as
    the gateway, holds a truncated file open). A file with content is left for the
    schema check to judge."""
    if database.stat().st_size > 0:
        return False
    wal = database.with_name(database.name + "-wal")
    if not wal.exists() or wal.stat().st_size == 0:
        return True
    # Content may live in the write-ahead log alone until a checkpoint: read through it.
    try:
        with closing(sqlite3.connect(database, timeout=1)) as conn:
            count = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
    except sqlite3.Error:
        return False
    finally:
        for side in SIDE_FILES:
            check_private(database.with_name(database.name + side))
    return int(count) == 0


def _serial_of(name: str) -> int | None:
    digits = name.removeprefix(PREFIX).removesuffix(SUFFIX)
    if name.startswith(PREFIX) and name.endswith(SUFFIX) and digits.isdigit():
        return int(digits)
    return None


def _copy_without_locks(source: sqlite3.Connection, target: Path) -> int:
    """Back ``source`` up into ``target``; returns the copy's serial. The locks held while
    apply records are dropped: restored, they would look like an apply that died."""
    with closing(sqlite3.connect(target, isolation_level=None)) as copy:
        source.backup(copy)
        copy.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
        copy.execute("DELETE FROM llmfleet_locks")
        row = copy.execute(
            "SELECT value FROM llmfleet_counters WHERE name = 'revision_serial'"
        ).fetchone()
    return int(row[0]) if row else 0


def _sync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass(frozen=True)
class Restored:
    """What ``restore_snapshot`` did: the snapshot it put back, and where the file it
    replaced went (None when there was none)."""

    snapshot: Snapshot
    kept_aside: Path | None


def restore_snapshot(database: Path, *, serial: int | None) -> Restored:
    """Put the snapshot of ``serial`` (the latest when None) in place of ``database``.

    Refused while a live process holds the apply lock (``LockHeldError``). The file
    it replaces, with its -wal and -shm, is renamed ``NAME.replaced-TIME`` beside it,
    so nothing is lost; a process that still has the old file open keeps reading it.
    """
    snapshot = Shelf.beside(database).find(serial)
    _refuse_while_locked(database)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    kept_aside = None
    for side in ("", *SIDE_FILES):
        current = database.with_name(database.name + side)
        if current.exists():
            aside = database.with_name(f"{database.name}.replaced-{stamp}{side}")
            current.replace(aside)
            kept_aside = kept_aside or aside
    temporary = database.with_name(f".{database.name}.restoring-{os.getpid()}")
    fd = open_private(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    with os.fdopen(fd, "wb") as out, snapshot.path.open("rb") as source:
        shutil.copyfileobj(source, out)
        out.flush()
        os.fsync(out.fileno())
    temporary.replace(database)
    _sync(database.parent)
    return Restored(snapshot, kept_aside)


def held_lock(database: Path) -> LockInfo | None:
    """The apply lock in ``database`` as plain SQLite reads it; None when the file is
    missing, empty or unreadable (a lost state holds no lock)."""
    if not database.is_file() or database.stat().st_size == 0:
        return None
    try:
        with closing(sqlite3.connect(database, timeout=5)) as conn:
            conn.row_factory = sqlite3.Row
            row = conn.execute("SELECT * FROM llmfleet_locks WHERE name = 'apply'").fetchone()
    except sqlite3.Error:
        return None
    if row is None:
        return None
    values = dict(row)
    values["acquired_at"] = datetime.fromisoformat(str(values["acquired_at"])).replace(tzinfo=UTC)
    return LockInfo(**values)


def _refuse_while_locked(database: Path) -> None:
    lock = held_lock(database)
    if lock is not None and not is_stale(lock, Identity.of_this_process(lock.user)):
        raise LockHeldError(name=lock.name, holder=lock.holder, since=lock.since)
