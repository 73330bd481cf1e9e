"""The apply lock: one holder at a time, named when it refuses, freed when done."""

from __future__ import annotations

import multiprocessing
import subprocess
import sys
from datetime import UTC, datetime

import pytest
from sqlalchemy import update

from llmfleet.errors import LockHeldError
from llmfleet.state import StateStore
from llmfleet.state.tables import locks
from tests.state.conftest import Location
from tests.state.contenders import contend


def test_held_lock_refuses_with_holder_and_since(location: Location) -> None:
    """A second taker gets LockHeldError naming the holder and when it took the lock."""
    moment = datetime(2030, 5, 6, 7, 8, 9, tzinfo=UTC)
    with (
        location.open(user="ada", clock=lambda: moment) as first,
        location.open(user="bob") as second,
    ):
        with first.lock(purpose="apply production") as info:
            assert info.holder.startswith("ada@") and " pid " in info.holder
            with pytest.raises(LockHeldError) as caught, second.lock(purpose="apply staging"):
                pytest.fail("two holders at once")
        assert caught.value.holder == info.holder
        assert caught.value.since == "2030-05-06T07:08:09+00:00"
        assert info.holder in str(caught.value) and "2030-05-06T07:08:09" in str(caught.value)
        assert caught.value.name == "apply"


def test_lock_released_on_exit_and_on_exception(store: StateStore) -> None:
    """The lock goes away when the block ends, also when it raises."""
    with store.lock(purpose="one"):
        assert store.lock_info() is not None
    assert store.lock_info() is None
    with pytest.raises(RuntimeError), store.lock(purpose="two"):
        raise RuntimeError("apply failed")
    assert store.lock_info() is None
    with store.lock(purpose="three") as info:
        assert store.lock_info() == info


def test_locks_are_named(store: StateStore) -> None:
    """Different names are different locks."""
    with store.lock("apply", purpose="apply"), store.lock("gateway", purpose="reload"):
        assert store.lock_info("gateway").purpose == "reload"  # type: ignore[union-attr]


def test_force_unlock_frees_a_live_holder_safely(location: Location) -> None:
    """force_unlock frees anyone's lock; the old holder's late release keeps the new lock."""
    with location.open() as first, location.open() as second:
        old = first.lock(purpose="stuck")
        old.__enter__()
        removed = second.force_unlock()
        assert removed is not None and removed.purpose == "stuck"
        with second.lock(purpose="next") as taken:
            old.__exit__(None, None, None)  # the old holder finishes late
            assert second.lock_info() == taken
        assert second.lock_info() is None
        assert second.force_unlock() is None


def test_stale_lock_of_dead_process_is_broken(location: Location) -> None:
    """A lock left by a crashed process on this host is broken and taken."""
    child = subprocess.run(
        [sys.executable, "-m", "tests.state.contenders", location.url, str(location.base_dir)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert child.returncode == 9, child.stderr
    with location.open(user="ada", settle=False) as store:
        left = store.lock_info()
        assert left is not None and left.holder == child.stdout.strip()
        with store.lock(purpose="after the crash") as info:
            assert info.holder.startswith("ada@")


def test_lock_of_other_host_is_never_broken(store: StateStore) -> None:
    """A holder on another host may be alive; only a person can unlock it."""
    with store.lock(purpose="remote apply"):
        with store._engine.begin() as conn:
            conn.execute(update(locks).values(host="elsewhere", pid=999_999_999))
        with (
            pytest.raises(LockHeldError, match="elsewhere pid 999999999"),
            store.lock(purpose="local apply"),
        ):
            pass
    assert store.lock_info() is None


def test_two_concurrent_contenders_exactly_one_wins(location: Location) -> None:
    """Processes racing for the lock: one wins, the others are told who won."""
    context = multiprocessing.get_context("spawn")
    count = 2
    barrier, results = context.Barrier(count), context.Queue()
    args = (location.url, str(location.base_dir), barrier, results)
    workers = [context.Process(target=contend, args=args) for _ in range(count)]
    for worker in workers:
        worker.start()
    outcomes = [results.get(timeout=60) for _ in workers]
    for worker in workers:
        worker.join(timeout=30)
        assert worker.exitcode == 0
    winners = [o for o in outcomes if o[0] == "won"]
    losers = [o for o in outcomes if o[0] == "lost"]
    assert len(winners) == 1, outcomes
    assert len(losers) == count - 1
    assert all(loser[1:] == winners[0][1:] for loser in losers)
