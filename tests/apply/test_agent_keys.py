"""What apply gives an agent replica: a scoped key of its own, its gateway, indexes and
secrets; and which keys it takes back. A real SQLite state store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from textwrap import dedent

import pytest

from llmfleet.apply.agents import agent_environment, revoke_stale_agent_keys
from llmfleet.errors import FleetError
from llmfleet.spec import load_spec_text
from llmfleet.spec.model import GatewaySpec, ServiceSpec
from llmfleet.state.store import StateStore

SPEC = """\
    services:
      chat: {model: "sim:tiny", engine: {kind: sim, version: "1.2.0"}}
    indexes:
      docs: {embedding: chat, dimension: 384}
    agents:
      docs-assistant:
        entrypoint: app:app
        models: [chat]
        indexes: [docs]
        secrets: [SEARCH_TOKEN]
        working_dir: agent
"""


@pytest.fixture
def store(tmp_path: Path) -> Iterator[StateStore]:
    opened = StateStore.open("sqlite:///state.db", base_dir=tmp_path)
    yield opened
    opened.close()


def _agent() -> ServiceSpec:
    fleet = load_spec_text(dedent(SPEC)).resolved
    return fleet.environment("production").services["docs-assistant"]


def _environment(store: StateStore, tmp_path: Path, user_env: dict[str, str]) -> object:
    return agent_environment(
        "docs-assistant",
        _agent(),
        environment="production",
        gateway=GatewaySpec(host="0.0.0.0", port=8080),
        store=store,
        spec_dir=tmp_path,
        user_env=user_env,
    )


def test_a_replica_gets_a_key_scoped_to_its_models_and_its_places(
    store: StateStore, tmp_path: Path
) -> None:
    for_replica = _environment(store, tmp_path, {"SEARCH_TOKEN": "s3cret", "HOME": "/x"})
    assert callable(for_replica)
    env = for_replica("production-docs-assistant-0-abc123")
    assert env["OPENAI_BASE_URL"] == "http://127.0.0.1:8080/v1"
    assert env["SEARCH_TOKEN"] == "s3cret" and "HOME" not in env  # named secrets only
    assert env["LLMFLEET_INDEX_DOCS"] == str(tmp_path / ".llmfleet/indexes/production/docs")
    assert env["LLMFLEET_AGENT_WORKDIR"] == str(tmp_path / "agent")
    key = store.verify_key(env["OPENAI_API_KEY"])
    assert key is not None and key.services == ("chat",)
    assert key.name == "agent production/production-docs-assistant-0-abc123"
    assert env["OPENAI_API_KEY"] not in repr(store.list_keys())  # only its hash is kept


def test_a_missing_secret_stops_the_apply_before_any_key_is_made(
    store: StateStore, tmp_path: Path
) -> None:
    with pytest.raises(FleetError) as caught:
        _environment(store, tmp_path, {})
    assert "agents.docs-assistant.secrets: SEARCH_TOKEN not set in your environment" in str(
        caught.value
    )
    assert "export SEARCH_TOKEN=" in str(caught.value.hint)
    assert store.list_keys() == []


def test_only_keys_of_replicas_gone_from_this_environment_are_revoked(
    store: StateStore, tmp_path: Path
) -> None:
    """`prod` never revokes the keys of `prod-eu`, whose replica ids start with `prod-`."""
    for environment, replica in [
        ("prod", "prod-docs-assistant-0-aaaaaa"),
        ("prod", "prod-docs-assistant-1-bbbbbb"),
        ("prod-eu", "prod-eu-docs-assistant-0-cccccc"),
    ]:
        store.create_key(
            name=f"agent {environment}/{replica}", services=["chat"], rpm=None, tpm=None
        )
    store.create_key(name="a person's key", services=[], rpm=None, tpm=None)
    revoked = revoke_stale_agent_keys(
        store, environment="prod", live={"prod-docs-assistant-1-bbbbbb"}
    )
    assert revoked == 1
    active = sorted(k.name for k in store.list_keys() if k.revoked_at is None)
    assert active == [
        "a person's key",
        "agent prod-eu/prod-eu-docs-assistant-0-cccccc",
        "agent prod/prod-docs-assistant-1-bbbbbb",
    ]
