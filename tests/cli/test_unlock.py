"""`llmfleet unlock` breaks only a lock whose holder is gone: a live apply on this host is
never unlocked under it (two applies would interleave), one on another host needs
--force, and the holder is shown as people read it, never with the lock's token."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import update

from llmfleet.state import LockInfo, StateStore
from llmfleet.state.tables import locks
from tests.fixtures.fleet import Fleet
from tests.fixtures.specs import one_sim_service

SPEC = one_sim_service(port="GATEWAY_PORT")
URL = "sqlite:///.llmfleet/state.db"


@contextmanager
def held(fleet: Fleet, **row: object) -> Iterator[LockInfo]:
    """The apply lock held by this test process, its row changed to ``row``."""
    with (
        StateStore.open(URL, base_dir=fleet.root) as store,
        store.lock(purpose="apply production") as info,
    ):
        if row:
            with store._engine.begin() as conn:
                conn.execute(update(locks).values(**row))
        yield info


def assert_readable(output: str, info: LockInfo) -> None:
    assert info.token not in output
    assert "LockInfo(" not in output and "token" not in output
    assert "apply production" in output  # the command that holds it


def test_a_live_holder_on_this_host_is_never_unlocked(fleet: Fleet) -> None:
    fleet.write(SPEC)
    with held(fleet) as info:
        result = fleet.run("unlock", "--yes", "--force", check=False)
        with StateStore.open(URL, base_dir=fleet.root) as store:
            assert store.lock_info() == info  # still held
    assert result.returncode == 1, result.stdout + result.stderr
    output = result.stdout + result.stderr
    assert f"pid {os.getpid()}" in output and socket.gethostname() in output
    assert info.since in output and "still running" in output
    assert_readable(output, info)


def test_a_holder_on_another_host_needs_force(fleet: Fleet) -> None:
    fleet.write(SPEC)
    with held(fleet, host="build-7", pid=4242) as info:
        refused = fleet.run("unlock", "--yes", check=False)
        assert refused.returncode == 1
        assert "build-7" in refused.stderr and "--force" in refused.stderr
        assert_readable(refused.stdout + refused.stderr, info)
        broken = fleet.run("unlock", "--yes", "--force")
        assert "unlocked" in broken.stdout and "build-7" in broken.stdout
        assert_readable(broken.stdout, info)
        with StateStore.open(URL, base_dir=fleet.root) as store:
            assert store.lock_info() is None


def test_a_dead_holder_on_this_host_is_unlocked(fleet: Fleet) -> None:
    """Any command removes it (and records an apply it had started as interrupted)."""
    fleet.write(SPEC)
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    with held(fleet, pid=int(gone.stdout)) as info:
        result = fleet.run("unlock", "--yes")
        assert "not locked" in result.stdout
        assert info.token not in result.stdout
        with StateStore.open(URL, base_dir=fleet.root) as store:
            assert store.lock_info() is None
