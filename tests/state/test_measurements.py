"""Throughput measurements in the state: recorded, listed newest first, and the table
arrives in a database made before it existed (SQLite and PostgreSQL)."""

from __future__ import annotations

import sqlalchemy

from llmfleet.state import StateStore
from tests.state.conftest import Location


def row(**overrides: object) -> dict[str, object]:
    body: dict[str, object] = {
        "environment": "production",
        "service": "chat",
        "serial": None,
        "runtime_hash": "abc",
        "replicas": 2,
        "source": "bench",
        "level": "c4",
        "concurrency": 4,
        "duration_s": 10.0,
        "requests": 40,
        "errors": 0,
        "input_tokens_per_s": 120.5,
        "output_tokens_per_s": 88.25,
    }
    return {**body, **overrides}


def test_measurements_are_recorded_and_listed_newest_first(store: StateStore) -> None:
    first = store.record_measurements([row(level="c1", concurrency=1), row()], user="ann")
    assert [m.level for m in first] == ["c1", "c4"]
    store.record_measurements([row(service="other")], user="bob")
    listed = store.measurements(environment="production", service="chat")
    assert [m.level for m in listed] == ["c4", "c1"]
    assert listed[0].output_tokens_per_s == 88.25 and listed[0].user == "ann"
    assert listed[0].created_at.tzinfo is not None
    assert len(store.measurements()) == 3


def test_the_table_is_added_to_a_state_made_before_it(location: Location) -> None:
    """A state written by an llmfleet without measurements keeps its revisions and gets
    the table on the next open; nothing else changes."""
    store = location.open()
    revision = store.record_revision(
        environment="production", kind="apply", user="ann", message="before costs",
        spec_hash="h", spec={}, plan={}, outcome="success", expected_serial=None,
    )  # fmt: skip
    with store._engine.begin() as conn:  # what an older llmfleet left behind
        conn.execute(sqlalchemy.text("DROP TABLE llmfleet_measurements"))
    store.close()
    reopened = location.open()
    try:
        assert reopened.get_revision(revision.serial).message == "before costs"
        reopened.record_measurements([row(serial=revision.serial)], user="ann")
        assert [m.serial for m in reopened.measurements()] == [revision.serial]
    finally:
        reopened.close()
