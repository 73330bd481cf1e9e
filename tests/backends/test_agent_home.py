"""The agent's home cannot be written (disk full, read-only, deleted).

The fault is real and needs no root: a folder where the agent writes its table's
temporary file (``agent-state.tmp``) makes every save fail with EISDIR, as ENOSPC or
EPERM would; removing it is "space freed". Tests run as root here, where a chmod
would not stop a write. Real agent, gateway and sim processes through the real CLI.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from llmfleet.backends.local.client import LocalBackend
from llmfleet.errors import BackendError
from tests.fixtures.fleet import Fleet
from tests.fixtures.orphans import Orphans, agent_pid, alive

SPEC = """
services:
  chat:
    model: sim:tiny
    engine: {kind: sim, version: "1.0.0", args: ["--ttft", "0.01", "--tps", "400"]}
    replicas: 1
environments:
  production:
    gateway: {port: GATEWAY_PORT}
"""
BLOCK = "agent-state.tmp"


@pytest.fixture
def orphans(tmp_path: Path) -> Iterator[Orphans]:
    with Orphans(tmp_path / ".llmfleet") as found:
        yield found


@pytest.fixture
def fleet(tmp_path: Path, orphans: Orphans) -> Fleet:
    project = Fleet(tmp_path)
    orphans.fleet = project
    project.write(SPEC)
    project.run("apply", "--yes")
    orphans.remember()
    return project


def block_table(fleet: Fleet) -> None:
    (fleet.home / BLOCK).mkdir()


def unblock_table(fleet: Fleet) -> None:
    (fleet.home / BLOCK).rmdir()


def table_pid(fleet: Fleet, replica_id: str) -> int | None:
    return Orphans.listed_pids(fleet.home).get(replica_id)


def test_supervision_survives_a_table_it_cannot_write_and_says_so(fleet: Fleet) -> None:
    """A replica killed while the table cannot be saved is restarted all the same;
    status names the problem; once the home is writable the table catches up."""
    victim = fleet.ready()[0]
    assert victim.pid is not None
    block_table(fleet)
    os.kill(victim.pid, signal.SIGKILL)
    fleet.wait_for(
        lambda: any(r.restarts == 1 and r.state == "ready" for r in fleet.replicas()),
        timeout=20,
        what="restart while the table is unwritable",
    )
    status = fleet.run("status").stdout
    assert "agent-state.json" in status and "Is a directory" in status, status
    (warning,) = json.loads(fleet.run("status", "--json").stdout)["warnings"]
    assert "agent-state.json" in warning and "Is a directory" in warning
    unblock_table(fleet)
    new_pid = fleet.replicas()[0].pid
    fleet.wait_for(
        lambda: table_pid(fleet, victim.replica_id) == new_pid, timeout=15, what="table saved"
    )
    assert "agent-state.json" not in fleet.run("status").stdout
    assert json.loads(fleet.run("status", "--json").stdout)["warnings"] == []


def test_apply_against_an_unwritable_table_names_the_cause_and_changes_nothing(
    fleet: Fleet,
) -> None:
    """The apply fails naming the file and the cause (not 'Server got itself in
    trouble'), and the config it was refused keeps out of the agent."""
    fleet.write(SPEC + "observability: {trace_sample_ratio: 1.0}\n")
    block_table(fleet)
    result = fleet.run("apply", "--yes", check=False)
    assert result.returncode != 0
    assert "agent-state.json" in result.stderr and "Is a directory" in result.stderr
    assert "trouble" not in result.stderr and "Traceback" not in result.stderr
    config = fleet.backend.environment_config("production")
    assert config["observability"]["trace_sample_ratio"] == 0.1
    unblock_table(fleet)
    assert fleet.run("plan", "--detailed-exitcode", check=False).returncode == 2


def test_down_with_an_unwritable_table_stops_everything(fleet: Fleet, orphans: Orphans) -> None:
    """down stops the replicas, the gateway and the agent though the agent cannot save."""
    pids = [*Orphans.listed_pids(fleet.home).values(), agent_pid(fleet.home)]
    block_table(fleet)
    started = time.monotonic()
    result = fleet.run("down", timeout=120)
    assert "stopped the local runtime" in result.stdout
    assert time.monotonic() - started < 30
    assert not any(map(alive, pids))


def test_sigterm_stops_everything_when_the_project_folder_was_deleted(
    fleet: Fleet, orphans: Orphans
) -> None:
    """Shutdown writes into a folder that is gone; the agent stops every replica and
    the gateway anyway, and exits."""
    agent = agent_pid(fleet.home)
    pids = [*Orphans.listed_pids(fleet.home).values(), agent]
    shutil.rmtree(fleet.root)
    os.kill(agent, signal.SIGTERM)
    deadline = time.monotonic() + 20
    while any(map(alive, pids)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(map(alive, pids)), [p for p in pids if alive(p)]


FAKE_AGENT = textwrap.dedent(
    """
    import os, sys
    from aiohttp import web
    async def info(request): return web.json_response({"pid": os.getpid(), "generation": 0})
    async def stop(request): return web.json_response({"stopping": True})  # and never does
    app = web.Application()
    app.router.add_get("/v1/agent", info)
    app.router.add_post("/v1/shutdown", stop)
    os.umask(0o077)
    web.run_app(app, path=sys.argv[1], print=lambda *a: print("up", flush=True))
    """
)


def test_shutdown_of_an_agent_that_stays_alive_is_an_error(tmp_path: Path) -> None:
    """An agent still alive when the wait ends is an error naming it, never 'stopped'."""
    home = tmp_path / ".llmfleet"
    home.mkdir(mode=0o700)
    server = subprocess.Popen(
        [sys.executable, "-c", FAKE_AGENT, str(home / "agent.sock")],
        stdout=subprocess.PIPE,
        text=True,
    )
    backend = LocalBackend(home)
    try:
        assert server.stdout is not None and server.stdout.readline().strip() == "up"
        with pytest.raises(BackendError, match=f"pid {server.pid}") as caught:
            backend.shutdown(timeout_s=1)
        assert caught.value.hint
    finally:
        backend.close()
        server.kill()
        server.wait()
        if server.stdout is not None:  # left open, its ResourceWarning fails a later test
            server.stdout.close()
