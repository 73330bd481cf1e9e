"""A saved plan is applied only to the runtime it was made against: `plan --out`, then
`down`, then `apply PLAN` used to record a success and print a gateway URL where
nothing listened. Real CLI, real agent and sim replicas."""

from __future__ import annotations

import httpx

from tests.fixtures.fleet import Fleet
from tests.fixtures.specs import one_sim_service

SPEC = one_sim_service(port="GATEWAY_PORT")


def test_a_saved_plan_is_refused_after_down(fleet: Fleet) -> None:
    fleet.write(SPEC)
    fleet.run("apply", "--yes")
    fleet.write(SPEC.replace("replicas: 1", "replicas: 2"))
    saved = fleet.root / "scale.plan"
    fleet.run("plan", "--out", str(saved))
    fleet.run("down")
    result = fleet.run("apply", str(saved), check=False)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "changed since the plan was made" in result.stderr
    assert "it saw 1 replica and the gateway, now nothing running" in result.stderr
    assert "llmfleet plan" in result.stderr
    assert "Apply complete" not in result.stdout and "Gateway:" not in result.stdout
    history = fleet.run("history").stdout
    assert history.count("success") == 1  # only the first apply
    # The plan made now is applied, and converges.
    fresh = fleet.root / "fresh.plan"
    fleet.run("plan", "--out", str(fresh))
    fleet.run("apply", str(fresh))
    assert len(fleet.ready()) == 2
    assert httpx.get(f"http://127.0.0.1:{fleet.gateway_port}/v1/models").status_code == 200
