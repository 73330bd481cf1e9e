"""Replica logs are capped like the gateway's: an engine that prints a lot never fills the disk.

The engine appends to its log through a descriptor the agent handed it, so the
supervisor caps the file from outside (``observe.rotation.cap_appended_file``)
now and then, and before every start: ``LLMFLEET_LOG_MAX_BYTES`` and
``LLMFLEET_LOG_FILES`` apply to replicas as to gateways.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import aiohttp
import pytest

from llmfleet.backends.base import ReplicaSpec
from llmfleet.backends.local import supervisor as supervision
from llmfleet.backends.local.supervisor import Managed, Supervisor, log_limits_from_env
from llmfleet.engines.base import LaunchCommand, Probe
from llmfleet.engines.sim.process import free_port
from llmfleet.observe.rotation import LogLimits

CHATTY = """
import sys, time
line = "x" * 99 + "\\n"
for burst in range(30):
    sys.stdout.write(line * 100)  # 10 kB
    sys.stdout.flush()
    time.sleep(0.03)
print("done", flush=True)
time.sleep(3600)
"""
LIMITS = LogLimits(max_bytes=20_000, files=2)


def chatty_replica(log_path: Path) -> Managed:
    """A process that writes 300 kB and never gets ready (nothing listens on its port)."""
    port = free_port()
    spec = ReplicaSpec(
        replica_id="production-chat-0-abc",
        environment="production",
        service="chat",
        slot=0,
        runtime_hash="abc",
        engine="sim",
        engine_version="1.2.0",
        launch=LaunchCommand(argv=(sys.executable, "-c", CHATTY)),
        readiness=(Probe("/health"),),
        liveness=Probe("/health"),
        metrics_path="/metrics",
        served_name="chat",
    )
    return Managed(spec=spec, port=port, argv=list(spec.launch.argv), log_path=log_path)


async def test_a_chatty_replicas_log_stays_near_its_cap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """300 kB written under a cap of 20 kB x 2 files: what stays on disk is a small
    multiple of the cap (the file is checked every LOG_CHECK_EVERY_S, here 0.05 s),
    never a third file, and the newest line is kept."""
    monkeypatch.setattr(supervision, "LOG_CHECK_EVERY_S", 0.05)
    log_path = tmp_path / "replica.log"
    managed = chatty_replica(log_path)
    async with aiohttp.ClientSession() as session:
        supervisor = Supervisor(session=session, on_change=lambda: None, log_limits=LIMITS)
        supervisor.start(managed)
        try:
            await _until_written(log_path)
        finally:
            await supervisor.stop_all(drain_timeout_s=0)
    kept = [log_path, log_path.with_name("replica.log.1")]
    assert sum(path.stat().st_size for path in kept if path.exists()) < 100_000
    assert not log_path.with_name("replica.log.2").exists()
    assert any("done" in path.read_text() for path in kept if path.exists())


async def _until_written(log_path: Path) -> None:
    """Until the writer's last line is on disk (the poll is the cap's own pace)."""

    kept = (log_path, log_path.with_name("replica.log.1"))

    async def written() -> None:
        # another process writes the file: there is no event to wait on
        while not any(p.exists() and "done" in p.read_text() for p in kept):  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.2)  # a few more checks of the cap

    await asyncio.wait_for(written(), timeout=30)


def test_replica_log_limits_come_from_the_environment() -> None:
    """The same settings as the gateway's; nonsense falls back to the defaults, 0 is off."""
    assert log_limits_from_env({}) == LogLimits()
    assert log_limits_from_env({"LLMFLEET_LOG_MAX_BYTES": "0"}) is None
    assert log_limits_from_env({"LLMFLEET_LOG_FILES": "lots"}) == LogLimits()
    custom = {"LLMFLEET_LOG_MAX_BYTES": "1000", "LLMFLEET_LOG_FILES": "3"}
    assert log_limits_from_env(custom) == LogLimits(max_bytes=1000, files=3)
