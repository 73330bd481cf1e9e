"""A SQLite state that is lost (truncated, garbled, deleted) stops every command with the
way back, and the snapshots llmfleet keeps beside it bring it back."""

from __future__ import annotations

import os
import sqlite3
import stat
import time
from pathlib import Path
from typing import Any

import pytest

from llmfleet.errors import LockHeldError, StateCorruptError, StateError
from llmfleet.state import StateStore
from llmfleet.state.snapshots import KEEP, Shelf, restore_snapshot

URL = "sqlite:///.llmfleet/state.db"


def record(store: StateStore, **overrides: Any) -> int:
    fields: dict[str, Any] = {
        "environment": "production",
        "kind": "apply",
        "user": "ada",
        "message": "",
        "spec_hash": "a" * 64,
        "spec": {},
        "plan": {"actions": []},
        "outcome": "success",
        "expected_serial": None,
    }
    return store.record_revision(**{**fields, **overrides}).serial


def db(tmp_path: Path) -> Path:
    return tmp_path / ".llmfleet" / "state.db"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def test_a_truncated_state_stops_at_once_with_the_way_back(tmp_path: Path) -> None:
    """state.db cut to 0 bytes while another process (the gateway) holds it open: opening
    fails at once with StateCorruptError naming the snapshot to restore; before, it waited
    the whole busy timeout and blamed another llmfleet command, or started again at 0."""
    with StateStore.open(URL, base_dir=tmp_path) as store:
        record(store)
        serial = record(store)
    gateway = sqlite3.connect(db(tmp_path))
    try:
        gateway.execute("SELECT count(*) FROM llmfleet_revisions").fetchall()
        os.truncate(db(tmp_path), 0)
        started = time.monotonic()
        with pytest.raises(StateCorruptError) as caught:
            StateStore.open(URL, base_dir=tmp_path, busy_timeout_s=30)
        assert time.monotonic() - started < 10  # not the 30 s busy wait
    finally:
        gateway.close()
    assert "is empty" in caught.value.message and str(db(tmp_path)) in caught.value.message
    assert f"llmfleet state restore {serial}" in (caught.value.hint or "")
    with pytest.raises(StateCorruptError):  # gateway gone: still no silent fresh start
        StateStore.open(URL, base_dir=tmp_path)
    assert db(tmp_path).stat().st_size == 0


def test_a_deleted_state_with_snapshots_is_not_started_again(tmp_path: Path) -> None:
    with StateStore.open(URL, base_dir=tmp_path) as store:
        record(store)
    for path in db(tmp_path).parent.glob("state.db*"):
        if path.is_file():
            path.unlink()
    with pytest.raises(StateCorruptError, match="llmfleet state restore"):
        StateStore.open(URL, base_dir=tmp_path)


def test_a_garbled_state_names_the_snapshot_to_restore(tmp_path: Path) -> None:
    with StateStore.open(URL, base_dir=tmp_path) as store:
        serial = record(store)
    db(tmp_path).write_bytes(b"not a database at all" * 400)
    with pytest.raises(StateCorruptError) as caught:
        StateStore.open(URL, base_dir=tmp_path)
    assert f"llmfleet state restore {serial}" in (caught.value.hint or "")


def test_snapshots_are_private_pruned_and_hold_no_lock(tmp_path: Path) -> None:
    """One snapshot per serial, the last KEEP kept, 0600 in a 0700 folder; the lock held
    while apply records is not in them (a restored lock would look like a dead apply)."""
    old = os.umask(0)
    try:
        with StateStore.open(URL, base_dir=tmp_path) as store:
            for _ in range(KEEP + 2):
                with store.lock(purpose="apply production"):
                    last = record(store)
    finally:
        os.umask(old)
    shelf = Shelf.beside(db(tmp_path))
    serials = [s.serial for s in shelf.snapshots()]
    assert serials == list(range(last - KEEP + 1, last + 1))
    assert mode(shelf.folder) == 0o700
    assert {mode(p) for p in shelf.folder.iterdir()} == {0o600}
    with sqlite3.connect(shelf.snapshots()[-1].path) as copy:
        assert copy.execute("SELECT count(*) FROM llmfleet_locks").fetchone() == (0,)


def test_restore_brings_back_history_and_keys_and_keeps_the_damaged_file(
    tmp_path: Path,
) -> None:
    with StateStore.open(URL, base_dir=tmp_path) as store:
        record(store)
        _, secret = store.create_key(name="app", services=[], rpm=None, tpm=None)
        serial = record(store, message="second")
    os.truncate(db(tmp_path), 0)
    restored = restore_snapshot(db(tmp_path), serial=None)
    assert restored.snapshot.serial == serial
    assert restored.kept_aside is not None and restored.kept_aside.exists()
    with StateStore.open(URL, base_dir=tmp_path) as store:
        assert [r.message for r in store.revisions()] == ["second", ""]
        assert store.verify_key(secret) is not None
        assert record(store) == serial + 1  # the serial carries on, never back to 1
    assert mode(db(tmp_path)) == 0o600


def test_restore_of_an_older_serial_and_an_unknown_one(tmp_path: Path) -> None:
    with StateStore.open(URL, base_dir=tmp_path) as store:
        first = record(store, message="one")
        record(store, message="two")
    restore_snapshot(db(tmp_path), serial=first)
    with StateStore.open(URL, base_dir=tmp_path) as store:
        assert [r.message for r in store.revisions()] == ["one"]
    with pytest.raises(StateError, match="no snapshot of serial 99"):
        restore_snapshot(db(tmp_path), serial=99)


def test_restore_is_refused_while_the_lock_is_held(tmp_path: Path) -> None:
    with StateStore.open(URL, base_dir=tmp_path) as store:
        record(store)
        with store.lock(purpose="apply production"), pytest.raises(LockHeldError):
            restore_snapshot(db(tmp_path), serial=None)


def test_without_snapshots_a_new_state_starts_empty(tmp_path: Path) -> None:
    """The first use, or a state whose snapshots were moved away on purpose."""
    with StateStore.open(URL, base_dir=tmp_path) as store:
        record(store)
    os.truncate(db(tmp_path), 0)
    shelf = Shelf.beside(db(tmp_path))
    shelf.folder.rename(tmp_path / "moved-away")
    with StateStore.open(URL, base_dir=tmp_path) as store:
        assert store.revisions() == []
