"""A fleet whose state lives in a real PostgreSQL server, through the real CLI."""

from __future__ import annotations

import pytest

from tests.fixtures.fleet import Fleet

pytestmark = pytest.mark.postgres


def test_apply_and_history_with_postgresql_state(fleet: Fleet, pg_database: str) -> None:
    """apply records its revision in PostgreSQL; a second apply is a no-op against it."""
    fleet.write(f"""
state: {pg_database}
services:
  chat:
    model: sim:tiny
    engine: {{kind: sim, version: "1.2.0"}}
environments:
  production: {{gateway: {{port: GATEWAY_PORT}}}}
  staging: {{gateway: {{port: STAGING_PORT}}}}
""")
    fleet.run("apply", "--yes", "-m", "on postgres")
    assert "No changes" in fleet.run("apply", "--yes").stdout
    history = fleet.run("history").stdout
    assert "on postgres" in history and "success" in history
    assert not (fleet.root / ".llmfleet" / "state.db").exists()
