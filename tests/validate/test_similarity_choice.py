"""What validation cannot judge is refused before staging is touched: a
``validation.similarity`` service production does not run, and a model's suite that
checks what only an agent reports (the real CLI, agent and sim engine)."""

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


SUITE = """
cases:
  - name: grounded
    prompt: How do I roll back?
    checks: [{retrieved: rollback.md}]
"""


def test_what_cannot_be_judged_is_refused_before_staging(fleet: Fleet) -> None:
    fleet.write(SPEC)
    fleet.run("apply", "--yes")
    refused = fleet.run("validate", check=False)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "validation.similarity names 'embed', which production does not run" in refused.stderr
    assert "Traceback" not in refused.stderr
    (fleet.root / "suite.yaml").write_text(SUITE)
    fleet.write(SPEC.replace("similarity: embed", "quality: suite.yaml"))
    model = fleet.run("validate", check=False)
    assert model.returncode == 1, model.stdout + model.stderr
    assert (
        "the suite of service 'chat' checks what an agent reports (grounded: retrieved)"
        in " ".join(model.stderr.split())
    )
    assert not fleet.replicas("staging")
    with StateStore.open(f"sqlite:///{fleet.home}/state.db", base_dir=fleet.root) as store:
        assert store.events("validation-started", limit=10) == []
