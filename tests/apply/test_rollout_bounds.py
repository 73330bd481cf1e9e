"""The local apply and rollback replace replicas within rollout.max_surge/max_unavailable."""

from __future__ import annotations

import pytest

from llmfleet.backends.local.rolling import Batch, plan_batches
from llmfleet.spec.placement import Rollout
from tests.fixtures.fleet import Fleet


@pytest.mark.parametrize(
    ("rollout", "count", "batches"),
    [
        (Rollout(), 3, [Batch(1, 0)] * 3),  # one by one, new before old
        (Rollout(max_surge=2), 2, [Batch(2, 0)]),  # room for both: all at once
        (Rollout(max_surge=2), 5, [Batch(2, 0), Batch(2, 0), Batch(1, 0)]),
        (Rollout(max_surge=1, max_unavailable=1), 3, [Batch(2, 1), Batch(1, 1)]),
        (Rollout(strategy="replace"), 2, [Batch(1, 1)] * 2),  # type: ignore[arg-type]
        (Rollout(strategy="replace", max_unavailable=4), 3, [Batch(3, 3)]),  # type: ignore[arg-type]
    ],
)
def test_batches_never_exceed_surge_or_unavailable(
    rollout: Rollout, count: int, batches: list[Batch]
) -> None:
    assert plan_batches(count, rollout) == batches


SPEC = """
services:
  chat:
    model: sim:tiny
    engine: {kind: sim, version: "VERSION"}
    replicas: 2
    rollout: {max_surge: 2}
environments:
  production: {gateway: {port: GATEWAY_PORT}}
  staging: {gateway: {port: STAGING_PORT}}
"""


def _order(output: str) -> list[str]:
    """'start' and 'drain' in the order the apply reported them."""
    return [
        "start" if ": starting " in line else "drain"
        for line in output.splitlines()
        if line.strip().startswith("-/+") and (": starting " in line or ": draining " in line)
    ]


def test_max_surge_2_replaces_both_replicas_at_once_in_apply_and_rollback(
    fleet: Fleet,
) -> None:
    """Both new replicas start before either old one is drained, and rollback (which
    applies the recorded revision, bounds included) does the same."""
    fleet.write(SPEC.replace("VERSION", "1.0.0"))
    fleet.run("apply", "--yes")
    fleet.write(SPEC.replace("VERSION", "1.1.0"))
    applied = fleet.run("apply", "--yes")
    assert _order(applied.stdout + applied.stderr) == ["start", "start", "drain", "drain"]
    assert {r.engine_version for r in fleet.ready()} == {"1.1.0"} and len(fleet.ready()) == 2
    rolled = fleet.run("rollback")
    assert _order(rolled.stdout + rolled.stderr) == ["start", "start", "drain", "drain"]
    assert {r.engine_version for r in fleet.ready()} == {"1.0.0"} and len(fleet.ready()) == 2
