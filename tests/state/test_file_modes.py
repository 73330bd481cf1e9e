"""A SQLite state is this user's only: it holds key hashes and whole resolved specs
(engine environments included), and apply and rollback act on what it says."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from llmfleet.errors import FleetError
from llmfleet.state import StateStore


@pytest.fixture
def open_umask() -> Iterator[None]:
    """Run with umask 000, the widest a user may have: modes must not depend on it."""
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


@pytest.mark.usefixtures("open_umask")
def test_a_new_state_and_its_folder_are_private_whatever_the_umask(tmp_path: Path) -> None:
    with StateStore.open("sqlite:///.llmfleet/state.db", base_dir=tmp_path) as store:
        store.record_event(kind="k", environment="e", serial=None, payload={}, user="u")
        home = tmp_path / ".llmfleet"
        files = {p.name: mode(p) for p in home.iterdir()}
    assert mode(home) == 0o700
    assert "state.db-wal" in files and "state.db-shm" in files, files  # write-ahead log
    assert files == dict.fromkeys(files, 0o600), {k: f"{v:o}" for k, v in files.items()}


def test_a_state_file_readable_by_others_is_tightened(tmp_path: Path) -> None:
    """Made 0644 by an older llmfleet: this user's, so made private, not refused."""
    path = tmp_path / "state.db"
    with StateStore.open(f"sqlite:///{path}", base_dir=tmp_path):
        pass
    path.chmod(0o644)
    with StateStore.open(f"sqlite:///{path}", base_dir=tmp_path):
        assert mode(path) == 0o600


def test_a_state_file_others_can_write_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    with StateStore.open(f"sqlite:///{path}", base_dir=tmp_path):
        pass
    path.chmod(0o666)
    with pytest.raises(FleetError, match="writable by") as caught:
        StateStore.open(f"sqlite:///{path}", base_dir=tmp_path)
    assert caught.value.hint is not None and f"chmod 600 {path}" in caught.value.hint


def test_a_write_ahead_log_of_another_user_is_refused(tmp_path: Path) -> None:
    """SQLite would replay a planted -wal file into the state at the next open."""
    path = tmp_path / "state.db"
    with StateStore.open(f"sqlite:///{path}", base_dir=tmp_path):
        pass
    wal = tmp_path / "state.db-wal"
    wal.write_bytes(b"")
    if os.geteuid() == 0:
        os.chown(wal, 65534, 65534)
        says = "owned by"
    else:
        wal.chmod(0o666)
        says = "writable by"
    with pytest.raises(FleetError, match=says) as caught:
        StateStore.open(f"sqlite:///{path}", base_dir=tmp_path)
    assert str(wal) in caught.value.message


def test_a_state_file_that_is_a_link_is_refused_not_followed(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere.db"
    (tmp_path / "state.db").symlink_to(target)
    with pytest.raises(FleetError, match="symbolic link"):
        StateStore.open("sqlite:///state.db", base_dir=tmp_path)
    assert not target.exists()
