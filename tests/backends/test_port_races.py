"""Replica ports are shared with every other program on the machine.

Two agents (two projects) that allocate at the same moment get disjoint ports; a
replica whose port another program answers on never becomes ready there (its probe
proves the engine knows this replica's key), and it moves to a free port, which the
gateway learns from the agent. Real sim processes; the "other project" is a sim
served in the test's own loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import httpx
import pytest

from llmfleet.backends.base import ReplicaSpec, ReplicaState
from llmfleet.backends.local.ports import PortLeases
from llmfleet.backends.local.probing import key_headers
from llmfleet.backends.local.supervisor import Managed, Supervisor, backoff_delay
from llmfleet.engines.base import LaunchCommand
from llmfleet.engines.sim.adapter import API_KEY_ENV, SimAdapter
from llmfleet.engines.sim.testing import serve_sim
from tests.fixtures.fleet import Fleet

OUR_KEY = "our-replica-key"
SETTLE_S = 30.0  # generous: 2 cores shared by many test runs; a pass takes ~2 s

ALLOCATOR = """
import json, sys
from pathlib import Path
from llmfleet.backends.local.ports import PortLeases
leases = PortLeases(folder=Path(sys.argv[1]), port_range=(int(sys.argv[2]), int(sys.argv[3])))
print("ready", flush=True)
sys.stdin.readline()
print(json.dumps([leases.allocate(()) for _ in range(10)]), flush=True)
sys.stdin.readline()
"""


@pytest.fixture
def allocators(tmp_path: Path) -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for proc in started:
        proc.kill()
        proc.communicate()  # reaps it and closes its pipes


def test_two_allocators_in_two_processes_at_once_get_disjoint_ports(
    tmp_path: Path, allocators: list[subprocess.Popen[str]]
) -> None:
    """Two agents allocating from the same range at the same moment never share a port:
    a port stays leased (a lock in a per-user folder) while its replica lives."""
    low = 20000 + os.getpid() % 9000
    args = [str(tmp_path / "leases"), str(low), str(low + 999)]
    for _ in range(2):
        allocators.append(
            subprocess.Popen(
                [sys.executable, "-c", ALLOCATOR, *args],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
        )
    for proc in allocators:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    for proc in allocators:  # both go at once
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    got = [set(json.loads(proc.stdout.readline())) for proc in allocators if proc.stdout]
    assert len(got[0]) == len(got[1]) == 10
    assert not got[0] & got[1], f"both got {sorted(got[0] & got[1])}"


def test_a_port_is_leased_by_one_holder_at_a_time_until_released(tmp_path: Path) -> None:
    """A leased port is skipped by every other allocator until its holder releases it
    (or dies: the lease is a kernel lock, see the two-process test)."""
    first = PortLeases(folder=tmp_path, port_range=(20000, 29999))
    other = PortLeases(folder=tmp_path, port_range=(20000, 29999))
    port = first.allocate(())
    assert other.allocate(()) != port
    first.release(port)
    assert other.claim(port, taken=()) == port and other.holds(port)
    first.close()
    other.close()


def sim_spec(*, slot: int = 0) -> ReplicaSpec:
    argv = (sys.executable, "-m", "llmfleet.engines.sim", "--port", "{port}")
    return ReplicaSpec(
        replica_id=f"production-chat-{slot}-abc",
        environment="production",
        service="chat",
        slot=slot,
        runtime_hash="abc",
        engine="sim",
        engine_version="1.2.0",
        launch=LaunchCommand(
            argv=(*argv, "--host", "127.0.0.1", "--ttft", "0", "--tps", "0"),
            api_key_env=API_KEY_ENV,
        ),
        readiness=SimAdapter.readiness,
        liveness=SimAdapter.liveness,
        metrics_path="/metrics",
        served_name="chat",
    )


def managed_on(port: int, log_path: Path) -> Managed:
    spec = sim_spec()
    argv = [arg.replace("{port}", str(port)) for arg in spec.launch.argv]
    return Managed(spec=spec, port=port, argv=argv, log_path=log_path, api_key=OUR_KEY)


@dataclass
class Watch:
    """Every (state, port) a replica went through, and a way to wait for one."""

    seen: list[tuple[ReplicaState, int]] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    managed: Managed | None = None

    def note(self) -> None:
        if self.managed is not None:
            self.seen.append((self.managed.state, self.managed.port))
        self.changed.set()

    async def until(self, done: object, *, timeout_s: float = SETTLE_S) -> None:
        async def wait() -> None:
            while not done():  # type: ignore[operator]
                self.changed.clear()
                await self.changed.wait()

        await asyncio.wait_for(wait(), timeout=timeout_s)


@asynccontextmanager
async def supervising(
    managed: Managed, *, leases: PortLeases | None
) -> AsyncIterator[tuple[Supervisor, Watch]]:
    watch = Watch(managed=managed)
    async with aiohttp.ClientSession() as session:
        supervisor = Supervisor(session=session, on_change=watch.note, ports=leases)
        supervisor.start(managed)
        try:
            yield supervisor, watch
        finally:
            await supervisor.stop_all(drain_timeout_s=0)


def foreign_port(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


@pytest.mark.parametrize("their_key", [None, "another-projects-key"])
async def test_a_replica_never_becomes_ready_on_a_port_another_replica_answers(
    tmp_path: Path, their_key: str | None
) -> None:
    """Another project's engine (keyless, or with a key of its own) holds the port our
    replica was given and no other port is left: ours cannot bind. Its probe must not
    take the other engine for it (that was a wrong model and a data leak through our
    gateway), and each failed start counts, so the back-off grows instead of a restart
    loop at 0 s; the log says which port is taken."""
    async with serve_sim(api_key=their_key) as theirs:
        port = foreign_port(theirs.url)
        leases = PortLeases(folder=tmp_path / "leases", port_range=(port, port))
        managed = managed_on(port, tmp_path / "replica.log")
        async with supervising(managed, leases=leases) as (_, watch):
            await watch.until(lambda: managed.failures >= 4 or managed.ready_at is not None)
            assert managed.ready_at is None and (ReplicaState.READY, port) not in watch.seen
            assert managed.state is ReplicaState.CRASH_LOOP
            assert backoff_delay(managed.failures) >= 1.0
        log = managed.log_path.read_text()
        assert f"port {port} is in use by another program" in log


@pytest.mark.parametrize("their_key", [None, "another-projects-key"])
async def test_a_replica_whose_port_is_taken_moves_to_a_free_one(
    tmp_path: Path, their_key: str | None
) -> None:
    """The same, with ports left in the range: the replica moves to a free port and
    becomes ready there, after few restarts; it is the one that answers our key."""
    async with serve_sim(api_key=their_key) as theirs:
        port = foreign_port(theirs.url)
        leases = PortLeases(folder=tmp_path / "leases", port_range=(port, port + 50))
        managed = managed_on(port, tmp_path / "replica.log")
        async with supervising(managed, leases=leases) as (supervisor, watch):
            await watch.until(lambda: managed.state is ReplicaState.READY)
            assert managed.port != port and (ReplicaState.READY, port) not in watch.seen
            assert managed.restarts <= 2
            assert leases.holds(managed.port) and not leases.holds(port)
            assert f"--port {managed.port} " in " ".join(managed.argv) + " "
            assert supervisor.processes[managed.spec.replica_id].status().port == managed.port
            async with aiohttp.ClientSession() as session:
                url = f"http://127.0.0.1:{managed.port}/v1/models"
                async with session.get(url, headers=key_headers(OUR_KEY)) as answer:
                    assert answer.status == 200
        assert not leases.holds(managed.port)  # stopping released it
        assert f"moved this replica to port {managed.port}" in managed.log_path.read_text()


SPEC = """
services:
  chat:
    model: sim:tiny
    engine: {kind: sim, version: "1.2.0", args: ["--ttft", "0", "--tps", "0"]}
    replicas: 1
environments:
  production:
    gateway: {port: GATEWAY_PORT}
"""


def test_a_port_taken_while_the_replica_was_down_is_left_and_the_gateway_follows(
    fleet: Fleet,
) -> None:
    """The agent and its replica die; another program takes the replica's port. The
    next agent restarts the replica on a new port, the gateway routes there, and plan
    is a true "No changes"."""
    fleet.write(SPEC)
    fleet.run("apply", "--yes")
    before = fleet.ready()[0]
    gateway = fleet.backend.gateways()[0].pid
    assert before.pid is not None and gateway is not None
    agent = int(fleet.backend._call("GET", "/v1/agent")["pid"])
    os.kill(agent, signal.SIGKILL)
    os.kill(before.pid, signal.SIGKILL)
    with socket.socket() as squatter, leftovers(fleet, gateway) as pids:
        fleet.wait_for(lambda: _gone(agent) and _gone(before.pid), what="both to die")
        squat(squatter, before.port)
        fleet.backend.ensure_agent()
        fleet.wait_for(lambda: len(fleet.ready()) == 1, timeout=SETTLE_S, what="a ready replica")
        after = fleet.ready()[0]
        pids.append(after.pid or 0)
        assert after.replica_id == before.replica_id and after.port != before.port
        fleet.wait_for(lambda: _chat_works(fleet), timeout=SETTLE_S, what="the gateway to follow")
        assert fleet.run("plan", "--detailed-exitcode", check=False).returncode == 0


def squat(squatter: socket.socket, port: int) -> None:
    """Listen on ``port``. Agents check a port by binding it for an instant, so a bind
    may fail for a moment: retry; a port someone holds for longer is the same case."""
    squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    deadline = time.monotonic() + 5
    while True:
        try:
            squatter.bind(("127.0.0.1", port))
        except OSError:
            if time.monotonic() > deadline:
                return
            time.sleep(0.01)
        else:
            squatter.listen()
            return


@contextlib.contextmanager
def leftovers(fleet: Fleet, *pids: int) -> Iterator[list[int]]:
    """Stop the runtime at the end, and kill what it started that is still there (a
    test that fails with the agent killed would leave it); a pid is killed only while
    it is still the program it was."""
    tracked = list(pids)
    try:
        yield tracked
    finally:
        cmdlines = {pid: _cmdline(pid) for pid in tracked if pid}
        with contextlib.suppress(Exception):
            fleet.down()
        for pid, cmdline in cmdlines.items():
            if cmdline is not None and _cmdline(pid) == cmdline:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


def _cmdline(pid: int) -> bytes | None:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] == "Z"


def _chat_works(fleet: Fleet) -> bool:
    """A chat through the gateway answers (in 5 s: one routed to the squatter, which
    never answers, would hang)."""
    body = {"model": "chat", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
    url = f"http://127.0.0.1:{fleet.gateway_port}/v1/chat/completions"
    try:
        return httpx.post(url, json=body, timeout=5).status_code == 200
    except httpx.HTTPError:
        return False
