"""An in-process sim engine on a real localhost port, for tests.

``serve_sim`` runs the sim app in the caller's event loop (aiohttp's
``TestServer``, handler cancellation on like the real process), so gateway and
engine tests get a real HTTP upstream without spawning a process. Crash faults
call an ``ExitRecorder`` instead of ending the test run.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from llmfleet.engines.sim.faults import Faults
from llmfleet.engines.sim.runtime import RUNTIME, SimConfig, SimRuntime
from llmfleet.engines.sim.server import create_app


@dataclass
class ExitRecorder:
    """Stands in for ``os._exit``: remembers each (code, reason) it was called with."""

    calls: list[tuple[int, str]] = field(default_factory=list)

    def __call__(self, code: int, reason: str) -> None:
        self.calls.append((code, reason))


@dataclass
class InProcessSim:
    """A served sim app: a client for it, its runtime, and the crash recorder."""

    client: TestClient[web.Request, web.Application]
    runtime: SimRuntime
    exits: ExitRecorder

    @property
    def url(self) -> str:
        return str(self.client.make_url("")).rstrip("/")


@asynccontextmanager
async def serve_sim(
    config: SimConfig | None = None, faults: Faults | None = None, *, api_key: str | None = None
) -> AsyncIterator[InProcessSim]:
    """Serve a sim app on 127.0.0.1 for the duration of the block (wanting ``api_key``
    when given)."""
    exits = ExitRecorder()
    app = create_app(config or SimConfig(), faults, exit_process=exits, api_key=api_key)
    client: TestClient[web.Request, web.Application] = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    try:
        yield InProcessSim(client=client, runtime=app[RUNTIME], exits=exits)
    finally:
        await client.close()
