"""Artifacts (checksums of models and engines) and events (what happened when)."""

from __future__ import annotations

import pytest

from llmfleet.errors import StateError
from llmfleet.state import StateStore


def test_artifact_upsert_replaces_the_record(store: StateStore) -> None:
    """Recording an artifact twice keeps one record, the newest."""
    assert store.artifact("model", "hf:org/repo/model.gguf") is None
    first = store.record_artifact(
        kind="model", key="hf:org/repo/model.gguf", sha256="a" * 64, size=10, path="/c/a"
    )
    assert store.artifact("model", "hf:org/repo/model.gguf") == first
    second = store.record_artifact(
        kind="model", key="hf:org/repo/model.gguf", sha256="b" * 64, size=5_000_000_000, path="/c/b"
    )
    assert store.artifact("model", "hf:org/repo/model.gguf") == second
    assert (second.sha256, second.size, second.path) == ("b" * 64, 5_000_000_000, "/c/b")
    assert store.artifact("engine", "hf:org/repo/model.gguf") is None


def test_events_newest_first_and_filtered(store: StateStore) -> None:
    """Events come back newest first, by kind and environment, limited."""
    store.record_event(
        kind="validation", environment="staging", serial=None, payload={"ok": True}, user="ada"
    )
    store.record_event(
        kind="promotion",
        environment="production",
        serial=None,
        payload={"from": "staging"},
        user="ada",
    )
    last = store.record_event(
        kind="validation",
        environment="production",
        serial=None,
        payload={"p50_ms": 12.5},
        user="bob",
    )
    assert [e.kind for e in store.events()] == ["validation", "promotion", "validation"]
    assert [e.environment for e in store.events("validation")] == ["production", "staging"]
    assert store.events("validation", environment="staging")[0].payload == {"ok": True}
    assert store.events(limit=1) == [last]
    assert last.payload == {"p50_ms": 12.5} and last.user == "bob"
    assert last.created_at.tzinfo is not None


def test_event_tied_to_a_revision(store: StateStore) -> None:
    """An event may name the revision it is about; an unknown serial is refused."""
    revision = store.record_revision(
        environment="production", kind="apply", user="ada", message="", spec_hash="h",
        spec={}, plan={}, outcome="success", expected_serial=0,
    )  # fmt: skip
    event = store.record_event(
        kind="validation", environment="production", serial=revision.serial, payload={}, user="ada"
    )
    assert event.serial == revision.serial
    with pytest.raises(StateError):
        store.record_event(
            kind="validation", environment="production", serial=99, payload={}, user="ada"
        )
    assert len(store.events()) == 1
