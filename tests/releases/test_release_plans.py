"""Releases plan like apply: a scale change in a rollback (or promote) is the spec's
change, not drift. Real agent and sim processes through the real CLI."""

from __future__ import annotations

from llmfleet.state.store import StateStore
from tests.fixtures.fleet import Fleet

SPEC = """
services:
  chat:
    model: sim:tiny
    engine: {kind: sim, version: "1.0.0", args: ["--ttft", "0.01", "--tps", "400"]}
    replicas: REPLICAS
environments:
  production:
    gateway: {port: GATEWAY_PORT}
"""


def test_a_rollback_that_scales_up_says_so_not_drift(fleet: Fleet) -> None:
    """Rolling 1 replica back to a revision of 2 records 'replicas: 1 -> 2' as the
    reason of the new replica (it said 'replica is not running (drift)')."""
    fleet.write(SPEC.replace("REPLICAS", "2"))
    fleet.run("apply", "--yes")
    fleet.write(SPEC.replace("REPLICAS", "1"))
    fleet.run("apply", "--yes")
    fleet.run("rollback", "--to", "1")
    with StateStore.open(f"sqlite:///{fleet.home}/state.db", base_dir=fleet.root) as store:
        revision = store.latest_revision("production")
    assert revision is not None and revision.kind == "rollback"
    reasons = {a["slot"]: a["reasons"] for a in revision.plan["actions"]}
    assert reasons == {1: ["replicas: 1 -> 2"]}
    assert len(fleet.ready()) == 2
