"""Small parts of the local runtime: back-off, port allocation, busy detection, wire format,
what a replica whose supervision died reports."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from pathlib import Path

import aiohttp
import pytest

from llmfleet.backends.base import ReplicaSpec, ReplicaState
from llmfleet.backends.local import supervisor as supervisor_module
from llmfleet.backends.local.managed import Managed
from llmfleet.backends.local.ports import allocate_port, port_free
from llmfleet.backends.local.probing import busy_in_metrics
from llmfleet.backends.local.supervisor import Supervisor, backoff_delay
from llmfleet.backends.local.wire import spec_from_json, spec_to_json
from llmfleet.engines.base import LaunchCommand, Probe


def test_backoff_restarts_at_once_then_doubles_up_to_30_s() -> None:
    assert [backoff_delay(n) for n in range(1, 9)] == [0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0]


def test_allocation_skips_our_ports_and_ports_other_programs_hold() -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        busy = squatter.getsockname()[1]
        assert not port_free(busy)
        port = allocate_port({busy + 1}, start=busy, port_range=(busy, busy + 10))
    assert port == busy + 2


def test_busy_gauges_read_from_prometheus_text() -> None:
    text = "# TYPE llamacpp:requests_processing gauge\nllamacpp:requests_processing 2\n"
    assert busy_in_metrics(text, ("llamacpp:requests_processing",)) is True
    idle = text.replace(" 2\n", " 0\n")
    assert busy_in_metrics(idle, ("llamacpp:requests_processing",)) is False
    assert busy_in_metrics(idle, ("other",)) is None


def test_replica_spec_round_trips_through_json() -> None:
    spec = _spec()
    assert spec_from_json(spec_to_json(spec)) == spec


def _spec() -> ReplicaSpec:
    return ReplicaSpec(
        replica_id="production-chat-0-abc",
        environment="production",
        service="chat",
        slot=0,
        runtime_hash="h",
        engine="sim",
        engine_version="1.2.0",
        launch=LaunchCommand(argv=("python", "--port", "{port}"), env={"A": "1"}),
        readiness=(Probe("/health"), Probe("/v1/completions", body={"prompt": "x"})),
        liveness=Probe("/health"),
        metrics_path="/metrics",
        served_name="chat",
        config={"slots": 4},
        busy_series=("sim:requests_running",),
        labels={"team": "a"},
    )


async def test_a_replica_whose_supervision_died_reports_stopped(tmp_path: Path) -> None:
    """A supervisor task that ended with an error (a bug, an unforeseen OSError) leaves
    a replica nobody restarts: it shows as stopped, which plan replaces as drift, never
    as the 'backoff' it was in, forever, with a dead pid."""

    async def broken() -> None:
        raise RuntimeError("supervision bug")

    spec = _spec()
    managed = Managed(spec=spec, port=1, argv=["x"], log_path=tmp_path / "x.log")
    managed.state = ReplicaState.BACKOFF
    managed.task = asyncio.create_task(broken())
    await asyncio.sleep(0)
    assert managed.status().state is ReplicaState.STOPPED
    assert isinstance(managed.task.exception(), RuntimeError)
    managed.task = None
    assert managed.status().state is ReplicaState.BACKOFF


async def test_stopping_a_replica_whose_supervision_died_stops_it(tmp_path: Path) -> None:
    """The replace that repairs it stops the old one without the old task's error."""
    changes: list[None] = []
    async with aiohttp.ClientSession() as session:
        supervisor = Supervisor(session=session, on_change=lambda: changes.append(None))
        managed = Managed(spec=_spec(), port=1, argv=[], log_path=tmp_path / "x.log")
        supervisor.start(managed)  # argv [] makes its first start raise IndexError
        for _ in range(100):
            if managed.unsupervised:
                break
            await asyncio.sleep(0.01)
        assert managed.status().state is ReplicaState.STOPPED
        await supervisor.stop(managed.spec.replica_id, drain_timeout_s=0)
    assert supervisor.processes == {}


async def test_stop_returns_when_a_supervision_task_swallows_its_cancel(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A task that does not end when cancelled (Python 3.11's wait_for can lose a
    cancel that races a finished await) must not hold up a stop, nor the agent's
    shutdown with it: CI saw an agent alive 60 s after it was asked to stop."""
    monkeypatch.setattr(supervisor_module, "TASK_END_S", 0.2, raising=False)

    async def stubborn() -> None:
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(3600)  # the first cancel is lost
        await asyncio.sleep(3600)

    async with aiohttp.ClientSession() as session:
        supervisor = Supervisor(session=session, on_change=lambda: None)
        managed = Managed(spec=_spec(), port=1, argv=[], log_path=tmp_path / "x.log")
        supervisor.processes[managed.spec.replica_id] = managed
        managed.task = asyncio.create_task(stubborn())
        await asyncio.sleep(0)
        stopping = asyncio.create_task(supervisor.stop(managed.spec.replica_id, drain_timeout_s=0))
        done, _ = await asyncio.wait({stopping}, timeout=5)
        managed.task.cancel()  # a second cancel ends it
        stopping.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await stopping
        assert done == {stopping}
        assert supervisor.processes == {}


async def test_the_agent_shutdown_ends_when_a_stop_hangs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stop that never ends (a drain against a wedged engine, a lost cancel) is cut
    off: the agent still reaches ``stopped`` and does not outlive its shutdown."""
    from llmfleet.backends.local import agent as agent_module

    monkeypatch.setattr(agent_module, "STOP_STEP_S", 0.2, raising=False)

    async def hang(*, drain_timeout_s: float) -> None:
        await asyncio.sleep(3600)

    async with aiohttp.ClientSession() as session:
        agent = agent_module.Agent(home=tmp_path, session=session)
        monkeypatch.setattr(agent.gateways, "stop_all", hang)
        monkeypatch.setattr(agent.replicas, "stop_all", hang)
        shutting = asyncio.create_task(agent.shutdown())
        done, _ = await asyncio.wait({shutting}, timeout=10)
        if not done:
            shutting.cancel()
        assert done == {shutting}
        assert agent.stopped.is_set()


def test_the_agent_process_exits_when_a_task_left_behind_ignores_its_cancel(
    tmp_path: Path,
) -> None:
    """Once ``serve`` returns, the agent has stopped all it owns; a task it left behind
    (a step its shutdown gave up on) must not keep the process alive, as asyncio.run's
    clean-up would, waiting without a bound for every task to take its cancel."""
    import subprocess
    import sys

    script = """
import asyncio, contextlib, sys
from llmfleet.backends.local import agent, agent_http

async def stubborn():
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.sleep(3600)
    await asyncio.sleep(3600)

async def serve(home, *, socket_name):
    asyncio.ensure_future(stubborn())
    await asyncio.sleep(0)

agent_http.serve = serve
agent.main(["--home", sys.argv[1]])
"""
    proc = subprocess.Popen(
        [sys.executable, "-c", script, str(tmp_path / "home")],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        code = proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise AssertionError(
            "the agent process was still running 20 s after serve returned"
        ) from None
    finally:
        if proc.stdout is not None:
            proc.stdout.close()
    assert code == 0
