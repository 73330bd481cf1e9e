"""The agent killed (kill -9, the OOM killer) while its replicas and gateway serve.

Every command that reads or changes the runtime adopts what still runs before it
plans or reports: the next plan tells the truth, the next apply converges without
duplicates, ``down`` and ``destroy`` really stop what runs. Real agent, gateway and
sim processes through the real CLI; ``orphans`` kills whatever a failing test left.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.fleet import Fleet
from tests.fixtures.orphans import Orphans, agent_pid, alive, kill_agent

SPEC = """
services:
  chat:
    model: sim:tiny
    engine: {kind: sim, version: "1.0.0", args: ["--ttft", "0.01", "--tps", "400"EXTRA]}
    replicas: 2
environments:
  production:
    gateway: {port: GATEWAY_PORT}
"""


def spec(extra: str = "") -> str:
    return SPEC.replace("EXTRA", extra)


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Fleet]:
    project = Fleet(tmp_path)
    with Orphans(project.home) as orphans:
        orphans.fleet = project
        yield project


def gateway_answers(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def applied_then_agent_killed(fleet: Fleet) -> dict[str, tuple[int | None, float | None]]:
    """Apply 2 replicas, kill -9 the agent; replica id -> (pid, started_at) before."""
    fleet.write(spec())
    fleet.run("apply", "--yes")
    before = {r.replica_id: (r.pid, r.started_at) for r in fleet.ready()}
    assert len(before) == 2
    kill_agent(fleet.home)
    return before


def test_plan_and_status_after_the_agent_died_see_the_fleet_that_still_runs(
    fleet: Fleet,
) -> None:
    """plan says No changes (not + for everything) and status lists the running replicas,
    with the pid and start time they had: adopted, not restarted, uptime kept."""
    before = applied_then_agent_killed(fleet)
    planned = fleet.run("plan", "--detailed-exitcode", check=False)
    assert planned.returncode == 0, planned.stdout + planned.stderr
    assert "No changes" in planned.stdout
    status = fleet.run("status").stdout
    assert "not running" not in status
    assert all(replica_id in status for replica_id in before)
    fleet.wait_for(lambda: len(fleet.ready()) == 2, what="adopted replicas ready")
    assert {r.replica_id: (r.pid, r.started_at) for r in fleet.ready()} == before


def test_apply_after_the_agent_died_does_not_double_the_fleet(fleet: Fleet) -> None:
    """apply adopts before it plans: 2 replicas for a spec of 2, the same processes."""
    before = applied_then_agent_killed(fleet)
    applied = fleet.run("apply", "--yes")
    assert "No changes" in applied.stdout
    assert {r.replica_id: r.pid for r in fleet.replicas()} == {k: v[0] for k, v in before.items()}


def test_down_after_the_agent_died_stops_every_process(fleet: Fleet) -> None:
    """down stops the adopted replicas and gateway, never 'was not running' with them left."""
    before = applied_then_agent_killed(fleet)
    gateway_pid = Orphans.listed_pids(fleet.home)["gateway-production"]
    result = fleet.run("down")
    assert "stopped the local runtime" in result.stdout
    pids = [pid for pid, _ in before.values() if pid is not None] + [gateway_pid]
    fleet.wait_for(lambda: not any(map(alive, pids)), timeout=15, what="processes to exit")
    assert not fleet.backend.running()


def test_destroy_after_the_agent_died_stops_the_gateway_it_records(fleet: Fleet) -> None:
    """destroy --yes records a destroy only once the gateway and replicas are gone."""
    applied_then_agent_killed(fleet)
    assert gateway_answers(fleet.gateway_port)
    result = fleet.run("destroy", "--yes")
    assert "Destroyed" in result.stdout
    assert fleet.replicas() == [] and fleet.backend.gateways() == []
    assert not gateway_answers(fleet.gateway_port)


def test_an_agent_that_dies_mid_apply_fails_it_with_one_hint(fleet: Fleet) -> None:
    """The apply names the dead agent once, with its hint printed once."""
    fleet.write(spec(', "--load-time", "30"'))
    apply = subprocess.Popen(
        [sys.executable, "-m", "llmfleet", "apply", "--yes", "-f", str(fleet.spec)],
        cwd=fleet.root,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "NO_COLOR": "1", "COLUMNS": "1000"},
    )
    try:
        fleet.wait_for(lambda: len(fleet.replicas()) == 2, what="replicas to start")
        pid = agent_pid(fleet.home)
        os.kill(pid, signal.SIGKILL)
    finally:
        _, err = apply.communicate(timeout=60)
    assert apply.returncode != 0
    assert "agent" in err and "Traceback" not in err
    assert err.count("hint:") == 1, err
