"""The next plan tells the truth and the next apply converges: a replica stuck in a
crash loop, and a machine that restarted (every process gone, the agent's table
listing dead pids). Real agent, gateway and sim processes through the real CLI;
``orphans`` kills whatever a failing test left.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.fleet import Fleet
from tests.fixtures.orphans import Orphans, agent_pid, alive

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


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Fleet]:
    project = Fleet(tmp_path)
    with Orphans(project.home) as orphans:
        orphans.fleet = project
        yield project


def crash_loop(fleet: Fleet, *, kills: int) -> None:
    """kill -9 the replica each time it starts, ``kills`` times, until the agent calls it
    a crash loop and backs off (the 5th failure waits 4 s before the next try)."""
    killed: set[int] = set()
    deadline = time.monotonic() + 30
    while len(killed) < kills and time.monotonic() < deadline:
        (replica,) = fleet.replicas()
        if replica.pid is not None and replica.pid not in killed and alive(replica.pid):
            os.kill(replica.pid, signal.SIGKILL)
            killed.add(replica.pid)
        time.sleep(0.01)
    fleet.wait_for(lambda: fleet.replicas()[0].state == "crash-loop", what="a crash loop")


def test_a_crash_looping_replica_is_planned_as_a_replace_and_apply_repairs_it(
    fleet: Fleet,
) -> None:
    """plan shows the stuck replica as -/+ with why (it said 'No changes'), and apply
    leaves one ready replica for the slot; the plan after it is empty."""
    fleet.write(SPEC.replace("REPLICAS", "1"))
    fleet.run("apply", "--yes")
    crash_loop(fleet, kills=5)
    planned = fleet.run("plan", "--detailed-exitcode", check=False)
    assert planned.returncode == 2, planned.stdout + planned.stderr
    assert "-/+ chat[0]" in planned.stdout and "crash-looping" in planned.stdout
    fleet.run("apply", "--yes")
    (replica,) = fleet.replicas()
    assert replica.state == "ready"
    assert "No changes" in fleet.run("plan").stdout


def test_after_a_reboot_plan_shows_what_apply_does(fleet: Fleet) -> None:
    """Every process gone, the table listing dead pids: plan shows the replicas and the
    gateway to create as drift, and apply creates exactly those (it printed 'No
    changes' while the agent restarted them behind the plan's back)."""
    fleet.write(SPEC.replace("REPLICAS", "2"))
    fleet.run("apply", "--yes")
    pids = [agent_pid(fleet.home), *Orphans.listed_pids(fleet.home).values()]
    for pid in pids:  # a reboot: the agent and all it ran die at once
        os.kill(pid, signal.SIGKILL)
    fleet.wait_for(lambda: not any(map(alive, pids)), timeout=10, what="processes to die")
    assert "not running" in fleet.run("status").stdout
    planned = fleet.run("plan").stdout
    for address in ("+ chat[0]", "+ chat[1]", "+ gateway"):
        assert address in planned, planned
    assert "replica is not running (drift)" in planned
    applied = fleet.run("apply", "--yes").stdout
    assert "No changes" not in applied
    assert "Plan: 3 to create, 0 to update, 0 to replace, 0 to delete." in applied
    assert len(fleet.ready()) == 2 and len(fleet.backend.gateways()) == 1
    assert "No changes" in fleet.run("plan").stdout
