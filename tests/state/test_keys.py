"""API keys: the secret is shown once, only its hash is kept, revocation sticks."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest
from sqlalchemy import select

from llmfleet.errors import FleetError, StateError
from llmfleet.state import StateStore
from llmfleet.state.tables import metadata
from tests.state.conftest import Location


def dump(store: StateStore) -> str:
    """Every row of every state table, as text."""
    with store._engine.connect() as conn:
        rows = [
            repr(row) for table in metadata.sorted_tables for row in conn.execute(select(table))
        ]
    return "\n".join(rows)


def test_secret_format_and_shown_once(store: StateStore) -> None:
    """The secret is lf- plus 40 url-safe characters; the record shows only a prefix."""
    key, secret = store.create_key(name="ci", services=[], rpm=None, tpm=None)
    assert re.fullmatch(r"lf-[A-Za-z0-9_-]{40}", secret)
    assert key.prefix == secret[:11] and key.prefix.startswith("lf-")
    assert secret not in repr(key)
    assert key.active and key.revoked_at is None


def test_secret_is_never_stored(store: StateStore, location: Location) -> None:
    """Neither the rows nor (for SQLite) the database files contain the secret."""
    _, secret = store.create_key(name="ci", services=["chat"], rpm=60, tpm=1000)
    text = dump(store)
    assert secret not in text
    assert secret[11:] not in text
    assert hashlib.sha256(secret.encode()).hexdigest() in text  # what is stored instead
    if location.url.startswith("sqlite"):
        files = [p for p in Path(location.base_dir, ".llmfleet").rglob("*") if p.is_file()]
        assert any("snapshots" in str(p) for p in files)  # the snapshots hold no secret either
        for path in files:
            assert secret.encode() not in path.read_bytes()


def test_verify_finds_the_active_key_only(store: StateStore) -> None:
    key, secret = store.create_key(name="ci", services=[], rpm=None, tpm=None)
    assert store.verify_key(secret) == key
    assert store.verify_key(secret[:-1] + ("A" if secret[-1] != "A" else "B")) is None
    assert store.verify_key("not-a-key") is None
    store.revoke_key(key.id)
    assert store.verify_key(secret) is None


def test_revoke_by_id_prefix_or_name(store: StateStore) -> None:
    """A key can be named by id, display prefix or active name; revoking twice is a no-op."""
    first, _ = store.create_key(name="one", services=[], rpm=None, tpm=None)
    second, _ = store.create_key(name="two", services=[], rpm=None, tpm=None)
    third, _ = store.create_key(name="three", services=[], rpm=None, tpm=None)
    assert store.revoke_key(str(first.id)).revoked_at is not None
    assert store.revoke_key(second.prefix).id == second.id
    revoked = store.revoke_key("three")
    assert revoked.id == third.id and not revoked.active
    assert store.revoke_key(third.id) == revoked
    assert all(not key.active for key in store.list_keys())
    with pytest.raises(StateError, match="no API key 'nope'"):
        store.revoke_key("nope")


def test_scoped_services_and_limits(store: StateStore) -> None:
    """An empty scope allows every service; a scoped key only its own."""
    everything, _ = store.create_key(name="all", services=[], rpm=None, tpm=None)
    scoped, _ = store.create_key(name="chat", services=["chat", "embed"], rpm=60, tpm=5000)
    assert everything.allows("chat") and everything.allows("anything")
    assert scoped.allows("chat") and scoped.allows("embed") and not scoped.allows("code")
    assert (scoped.services, scoped.rpm, scoped.tpm) == (("chat", "embed"), 60, 5000)
    assert [key.name for key in store.list_keys()] == ["all", "chat"]


def test_name_unique_among_active_keys(store: StateStore) -> None:
    """A second active key of a name is refused; after revoking, the name is free."""
    key, _ = store.create_key(name="ci", services=[], rpm=None, tpm=None)
    with pytest.raises(StateError, match="an active API key named 'ci' already exists"):
        store.create_key(name="ci", services=[], rpm=None, tpm=None)
    store.revoke_key(key.id)
    again, _ = store.create_key(name="ci", services=[], rpm=None, tpm=None)
    assert again.id != key.id and again.active


@pytest.mark.parametrize(
    ("name", "services", "rpm"), [("", [], None), ("ci", [""], None), ("ci", [], 0)]
)
def test_bad_key_requests_are_refused(
    store: StateStore, name: str, services: list[str], rpm: int | None
) -> None:
    with pytest.raises(FleetError):
        store.create_key(name=name, services=services, rpm=rpm, tpm=None)
    assert store.list_keys() == []
