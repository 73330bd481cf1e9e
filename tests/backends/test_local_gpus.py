"""GPUs of its own for each local replica: the assignment, the refusal when too few are
free, the environment a real process gets, a restart of the agent, and a GPU fault that
takes out of routing only the replicas on that GPU."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from llmfleet.backends.base import ReplicaSpec, ReplicaState
from llmfleet.backends.local.agent import Agent
from llmfleet.backends.local.agent_http import build_app
from llmfleet.backends.local.client import LocalBackend
from llmfleet.backends.local.gpus import assign_gpus, held_gpus
from llmfleet.backends.local.layout import SOCKET_NAME
from llmfleet.engines.base import LaunchCommand, Probe
from llmfleet.errors import GpuShortageError
from llmfleet.observe.local import mark_gpu_faults


def spec(rid: str, *, gpus: int, env: dict[str, str] | None = None) -> ReplicaSpec:
    argv = (sys.executable, "-m", "llmfleet.engines.sim", "--port", "{port}",
            "--model-name", "chat")
    return ReplicaSpec(replica_id=rid, environment="p", service="chat", slot=0, runtime_hash="",
                       engine="sim", engine_version="1", launch=LaunchCommand(argv, env or {}),
                       readiness=(Probe("/health"),), liveness=Probe("/health"),
                       metrics_path="/metrics", served_name="chat",
                       config={"resources": {"gpus": gpus}})


def test_each_replica_gets_gpus_no_other_replica_holds() -> None:
    first = assign_gpus(spec("a", gpus=1), [], count=4)
    assert first.launch.env["CUDA_VISIBLE_DEVICES"] == "0"
    assert first.launch.env["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID"  # NVML's numbering
    pair = assign_gpus(spec("b", gpus=2), [first], count=4)
    assert held_gpus(pair) == {"1", "2"}
    assert held_gpus(assign_gpus(spec("c", gpus=1), [pair], count=4)) == {"0"}  # "a" gone


def test_too_few_free_gpus_is_refused_naming_who_holds_them() -> None:
    first = assign_gpus(spec("a", gpus=1), [], count=2)
    with pytest.raises(GpuShortageError) as caught:
        assign_gpus(spec("b", gpus=2), [first], count=2)
    assert caught.value.message == (
        "replica b needs 2 GPU(s); this machine has 2, 1 free (held: GPU 0: a)")
    assert caught.value.hint


@pytest.mark.parametrize("given", [
    spec("cpu", gpus=0),
    spec("pinned", gpus=1, env={"CUDA_VISIBLE_DEVICES": "3"}),  # the operator chose
])
def test_a_replica_without_gpus_or_pinned_by_its_spec_is_left_alone(given: ReplicaSpec) -> None:
    assert assign_gpus(given, [], count=4) == given


def test_no_gpu_on_this_machine_assigns_nothing() -> None:
    """Engines that need a GPU refuse the service before it gets here; the sim runs."""
    assert assign_gpus(spec("a", gpus=1), [], count=0) == spec("a", gpus=1)


def environ_of(pid: int) -> dict[str, str]:
    """The environment the process was started with."""
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    pairs = (item.partition(b"=") for item in raw.split(b"\0") if item)
    return {k.decode(): v.decode() for k, _, v in pairs}


async def refused_through_the_cli_client(agent: Agent, home: Path) -> None:
    """The agent's HTTP API says why (422), and the CLI's client raises the same error."""
    runner = web.AppRunner(build_app(agent))
    await runner.setup()
    await web.UnixSite(runner, str(home / SOCKET_NAME)).start()
    backend = LocalBackend(home)
    try:
        with pytest.raises(GpuShortageError) as caught:
            await asyncio.to_thread(backend.start_replica, spec("c", gpus=1))
        assert caught.value.message == (
            "replica c needs 1 GPU(s); this machine has 2, 0 free (held: GPU 0: a, GPU 1: b)")
        assert caught.value.hint is not None and "resources.gpus" in caught.value.hint
    finally:
        backend.close()
        await runner.cleanup()


async def test_the_agent_gives_real_processes_their_gpus_keeps_them_and_fences_a_fault(
    tmp_path: Path,
) -> None:
    async with aiohttp.ClientSession() as session:
        agent = Agent(home=tmp_path, session=session)
        agent._gpus = 2  # as NVML would count them on a two-GPU machine
        try:
            a = agent.start_replica(spec("a", gpus=1))
            b = agent.start_replica(spec("b", gpus=1))
            cpu = agent.start_replica(spec("cpu", gpus=0))
            with pytest.raises(GpuShortageError, match="1 GPU"):
                agent.start_replica(spec("c", gpus=1))
            await refused_through_the_cli_client(agent, tmp_path)
            for _ in range(200):
                if all(m.state is ReplicaState.READY for m in (a, b, cpu)):
                    break
                await asyncio.sleep(0.05)
            assert all(m.state is ReplicaState.READY for m in (a, b, cpu))
            assert a.pid is not None and b.pid is not None
            assert environ_of(a.pid)["CUDA_VISIBLE_DEVICES"] == "0"  # read once they are ready
            assert environ_of(b.pid)["CUDA_VISIBLE_DEVICES"] == "1"
            mark_gpu_faults(agent, {"1": "1 XID error(s), last XID 79"})
            assert [m.state for m in (a, b, cpu)] == [
                ReplicaState.READY, ReplicaState.UNHEALTHY, ReplicaState.READY]

            restarted = Agent(home=tmp_path, session=session)  # reads the saved table
            restarted._gpus = 2
            restarted.restore()
            try:
                kept = restarted.replicas.processes
                assert held_gpus(kept["a"].spec) == {"0"} and held_gpus(kept["b"].spec) == {"1"}
                assert kept["a"].adopted_pid == a.pid  # adopted, not started again
            finally:
                for managed in kept.values():
                    if managed.task is not None:
                        managed.task.cancel()
        finally:
            await agent.shutdown()
            await agent.observer.stop()
