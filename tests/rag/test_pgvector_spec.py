"""``kind: pgvector`` in the spec: the database URL only by the name of a variable, the
fields of one kind refused on the other at their line, each environment its own table."""

from __future__ import annotations

from pathlib import Path
from textwrap import dedent

import pytest

from llmfleet.apply.agents import agent_environment
from llmfleet.errors import FleetError
from llmfleet.spec import load_spec_text
from llmfleet.spec.model import GatewaySpec
from llmfleet.state.store import StateStore
from tests.spec.conftest import problems_of

SPEC = """\
    services:
      embed:
        model: sim:tiny
        engine: {kind: sim, version: "1.2.0"}
    indexes:
      docs: {kind: pgvector, url_env: DOCS_DB_URL, embedding: embed, dimension: 384}
    agents:
      helper:
        entrypoint: helper.app:app
        models: [embed]
        indexes: [docs]
"""


def test_each_environment_has_its_own_table_and_the_agent_gets_no_secret() -> None:
    fleet = load_spec_text(dedent(SPEC)).resolved
    for name in ("production", "staging"):
        agent = fleet.environment(name).services["helper"].agent
        assert agent is not None
        assert agent.index_uris == {"docs": f"pgvector://llmfleet_docs_{name}?url_env=DOCS_DB_URL"}


def test_the_url_itself_is_refused_where_it_was_written_and_not_echoed() -> None:
    text = SPEC.replace("url_env: DOCS_DB_URL", "url_env: postgresql://u:pw-9x1@db/docs")
    assert problems_of(text) == [
        "fleet.yaml:6:26: indexes.docs.url_env: name the environment variable that holds "
        "the URL (url_env: DOCS_DB_URL), never the URL itself: it carries a password"
    ]


def test_fields_of_the_other_kind_are_refused() -> None:
    missing = SPEC.replace("url_env: DOCS_DB_URL, ", "")
    assert "a pgvector index needs url_env" in problems_of(missing)[0]
    with_uri = SPEC.replace("url_env: DOCS_DB_URL,", "url_env: DOCS_DB_URL, uri: /tmp/x,")
    assert "uri is for lancedb indexes" in problems_of(with_uri)[0]
    lancedb = SPEC.replace("kind: pgvector", "kind: lancedb")
    assert "url_env and table are for kind: pgvector" in problems_of(lancedb)[0]
    bad_table = SPEC.replace("url_env: DOCS_DB_URL,", "url_env: DOCS_DB_URL, table: Docs-1,")
    assert "a table name is lower-case letters, digits and '_'" in problems_of(bad_table)[0]


def test_an_agent_gets_its_pgvector_index_url_from_the_variable(tmp_path: Path) -> None:
    """apply gives the agent the location and, in the named variable, the database URL;
    without the variable nothing starts and no key is made."""
    helper = load_spec_text(dedent(SPEC)).resolved.environment("production").services["helper"]
    store = StateStore.open("sqlite:///state.db", base_dir=tmp_path)
    try:

        def environment(user_env: dict[str, str]) -> object:
            return agent_environment(
                "helper",
                helper,
                environment="production",
                gateway=GatewaySpec(port=8080),
                store=store,
                spec_dir=tmp_path,
                user_env=user_env,
            )

        with pytest.raises(FleetError, match=r"\$DOCS_DB_URL, which is not set") as refused:
            environment({"OTHER": "x"})
        assert "export DOCS_DB_URL=postgresql://" in str(refused.value.hint)
        assert store.list_keys() == []
        for_replica = environment({"DOCS_DB_URL": "postgresql://u:pw@db/docs", "OTHER": "x"})
        assert callable(for_replica)
        env = for_replica("production-helper-0-abc123")
        assert env["LLMFLEET_INDEX_DOCS"] == (
            "pgvector://llmfleet_docs_production?url_env=DOCS_DB_URL"
        )
        assert env["DOCS_DB_URL"] == "postgresql://u:pw@db/docs" and "OTHER" not in env
    finally:
        store.close()
