"""Revisions: recorded whole or not at all, under global, growing serials."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from llmfleet.errors import StalePlanError, StateError
from llmfleet.state import StateStore, revisions
from tests.state.conftest import Location


def record(store: StateStore, environment: str = "production", **overrides: Any):
    fields: dict[str, Any] = {
        "environment": environment,
        "kind": "apply",
        "user": "ada",
        "message": "first",
        "spec_hash": "a" * 64,
        "spec": {"services": {"chat": {"replicas": 2}}},
        "plan": {"actions": [{"op": "create", "replica": "chat-0"}]},
        "outcome": "success",
        "expected_serial": None,
    }
    return store.record_revision(**{**fields, **overrides})


def test_recorded_revision_reads_back_whole(store: StateStore) -> None:
    """Every field of a revision survives the round trip, the time as aware UTC."""
    written = record(store, message="hello", error=None)
    read = store.get_revision(written.serial)
    assert read == written
    assert read.spec == {"services": {"chat": {"replicas": 2}}}
    assert read.plan["actions"][0]["op"] == "create"
    assert read.created_at.tzinfo is not None
    assert read.created_at.utcoffset() == timedelta(0)
    assert (read.kind, read.outcome, read.user, read.message) == (
        "apply",
        "success",
        "ada",
        "hello",
    )


def test_clock_is_injected_and_stored_as_utc(location: Location) -> None:
    """Times come from the store's clock and are stored as UTC whatever their zone."""
    moment = datetime(2030, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=2)))
    with location.open(clock=lambda: moment) as store:
        written = record(store)
    assert written.created_at == moment
    assert written.created_at.tzinfo == UTC


def test_serials_are_global_and_growing(store: StateStore) -> None:
    """Serials grow by one across environments; each environment's serial is its latest."""
    serials = [
        record(store, "production").serial,
        record(store, "staging").serial,
        record(store, "production").serial,
    ]
    assert serials == [1, 2, 3]
    assert store.current_serial("production") == 3
    assert store.current_serial("staging") == 2
    assert store.current_serial("nowhere") == 0


def test_revisions_listed_newest_first(store: StateStore) -> None:
    """``revisions`` filters by environment and honours the limit, newest first."""
    for environment in ["production", "staging", "production", "production"]:
        record(store, environment)
    assert [r.serial for r in store.revisions()] == [4, 3, 2, 1]
    assert [r.serial for r in store.revisions("production")] == [4, 3, 1]
    assert [r.serial for r in store.revisions("production", limit=2)] == [4, 3]


def test_latest_revision_skips_failures_unless_asked(store: StateStore) -> None:
    """A failed apply moves the serial but is not the latest good revision."""
    good = record(store)
    failed = record(store, outcome="failed", error="replica chat-1 crashed")
    assert store.current_serial("production") == failed.serial
    assert store.latest_revision("production") == good
    assert store.latest_revision("production", successful_only=False) == failed
    assert store.latest_revision("staging") is None


def test_rollback_records_its_parent(store: StateStore) -> None:
    first = record(store)
    record(store)
    rollback = record(store, kind="rollback", parent_serial=first.serial)
    assert store.get_revision(rollback.serial).parent_serial == first.serial


def test_unknown_serial_names_the_nearest(store: StateStore) -> None:
    """Asking for a missing serial says which serials exist around it."""
    with pytest.raises(StateError, match="no revisions yet"):
        store.get_revision(1)
    for _ in range(5):
        record(store)
    with pytest.raises(StateError, match=r"no revision 9; nearest existing: 4, 5"):
        store.get_revision(9)


def test_stale_expected_serial_is_refused_and_nothing_written(store: StateStore) -> None:
    """A plan built from an older serial is refused, and the refusal writes nothing."""
    record(store, expected_serial=0)
    record(store, expected_serial=1)
    with pytest.raises(StalePlanError, match=r"made from serial 1 but .* now at 2; run plan again"):
        record(store, expected_serial=1)
    assert store.current_serial("production") == 2
    assert len(store.revisions()) == 2
    assert record(store, expected_serial=2).serial == 3


def test_failure_after_insert_leaves_nothing(
    store: StateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A crash between the insert and the commit rolls the whole write back."""
    record(store)

    def crash(conn: Any, serial: int) -> None:
        raise RuntimeError("power cut")

    monkeypatch.setattr(revisions, "advance_counter", crash)
    with pytest.raises(RuntimeError, match="power cut"):
        record(store)
    monkeypatch.undo()
    assert [r.serial for r in store.revisions()] == [1]
    assert record(store).serial == 2


def test_unstorable_payload_is_a_state_error_and_writes_nothing(store: StateStore) -> None:
    """A spec that is not JSON is refused as a StateError; no row and no serial are used."""
    with pytest.raises(StateError, match="cannot store the spec: it is not plain JSON"):
        record(store, spec={"when": object()})
    assert store.revisions() == []
    assert record(store).serial == 1


def test_unknown_kind_is_a_programming_error(store: StateStore) -> None:
    with pytest.raises(ValueError, match="revision kind"):
        record(store, kind="deploy")


def test_concurrent_writers_get_distinct_consecutive_serials(location: Location) -> None:
    """Writers racing in threads and stores never share or skip a serial."""
    stores = [location.open() for _ in range(4)]
    try:
        with ThreadPoolExecutor(max_workers=4) as pool:
            jobs = [pool.submit(record, stores[i % 4], f"env{i % 3}") for i in range(24)]
            serials = sorted(job.result().serial for job in jobs)
    finally:
        for opened in stores:
            opened.close()
    assert serials == list(range(1, 25))
