"""``validation.similarity`` names the fleet's embedding service; one production does not
run is refused before staging is touched (the real CLI, agent and sim engine)."""

from __future__ import annotations

from llmfleet.state.store import StateStore
from tests.fixtures.fleet import Fleet

SPEC = """
services:
  chat:
    model: sim:tiny
    engine: {kind: sim, version: "1.2.0"}
    validation: {speed: null, similarity: embed}
environments:
  production: {gateway: {port: GATEWAY_PORT}}
  staging: {gateway: {port: STAGING_PORT}}
"""


def test_a_similarity_service_production_does_not_run_is_refused(fleet: Fleet) -> None:
    fleet.write(SPEC)
    fleet.run("apply", "--yes")
    refused = fleet.run("validate", check=False)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "validation.similarity names 'embed', which production does not run" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert not fleet.replicas("staging")
    with StateStore.open(f"sqlite:///{fleet.home}/state.db", base_dir=fleet.root) as store:
        assert store.events("validation-started", limit=10) == []
