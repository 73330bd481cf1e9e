"""Fixtures for gateway tests: real sim engine processes on free ports and an
in-process gateway in front of them fed by a ``StaticSource``."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
import uvloop

from llmfleet.backends.base import ReplicaState, ReplicaStatus
from llmfleet.gateway.app import Gateway, GatewayApp, GatewayConfig, create_app
from llmfleet.gateway.keys import KeyVerifier
from llmfleet.gateway.replicas import Snapshot, StaticSource
from llmfleet.spec.model import ServiceSpec

FAST_CONFIG = GatewayConfig(probe_interval_s=0.05, probe_timeout_s=0.5, eject_s=0.1)
BOTH_LOOPS = (
    "test_connections.py",
    "test_server.py",
    "test_hostile_clients.py",
    "test_openai_compat.py",
)
"""Test modules of the gateway's own HTTP code, which production runs on uvloop."""


def pytest_asyncio_loop_factories(config: Any, item: Any) -> dict[str, Any]:
    """Run the gateway's own HTTP code's tests on asyncio and on uvloop; the rest on
    asyncio, as pytest-asyncio would."""
    if item.path.name in BOTH_LOOPS:
        return {"asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop}
    return {"asyncio": asyncio.new_event_loop}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class SimProcess:
    """One ``python -m llmfleet.engines.sim`` process; restartable on its port."""

    port: int
    args: list[str]
    proc: subprocess.Popen[str] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, *extra: str) -> SimProcess:
        argv = [
            sys.executable,
            "-m",
            "llmfleet.engines.sim",
            "--port",
            str(self.port),
            *self.args,
            *extra,
        ]
        self.proc = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert "listening" in line, line
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
        if self.proc is not None:
            self.proc.wait()
            if self.proc.stdout:
                self.proc.stdout.close()

    def wait_exit(self, timeout_s: float = 5.0) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout_s)


@pytest.fixture
def sims() -> Iterator[list[SimProcess]]:
    """A list the test appends started sims to; all are killed afterwards."""
    started: list[SimProcess] = []
    yield started
    for sim in started:
        sim.stop()


def spawn(sims: list[SimProcess], *args: str, model: str = "chat") -> SimProcess:
    default = ["--model-name", model, "--ttft", "0", "--tps", "0", "--seed", "7"]
    sim = SimProcess(port=free_port(), args=[*default, *args]).start()
    sims.append(sim)
    return sim


def service(**overrides: Any) -> ServiceSpec:
    body: dict[str, Any] = {
        "model": "sim:tiny",
        "engine": {"kind": "sim", "version": "1.2.0"},
        "slots": 4,
        "timeouts": {"connect_s": 1, "first_byte_s": 2, "idle_s": 0.5},
        "retries": {"wait_for_replica_s": 3},
    }
    for key, value in overrides.items():
        body[key] = {**body.get(key, {}), **value} if isinstance(value, dict) else value
    return ServiceSpec.model_validate(body)


def replica(
    service_name: str, sim: SimProcess, index: int, *, state: ReplicaState = ReplicaState.READY
) -> ReplicaStatus:
    return ReplicaStatus(
        replica_id=f"{service_name}-{index}",
        environment="test",
        service=service_name,
        slot=index,
        runtime_hash="h",
        engine="sim",
        engine_version="1.2.0",
        state=state,
        port=sim.port,
        served_name=service_name,
    )


def snapshot(
    services: dict[str, ServiceSpec], replicas: list[ReplicaStatus], generation: int = 1
) -> Snapshot:
    return Snapshot(services=services, replicas=replicas, generation=generation)


@dataclass
class GatewayUnderTest:
    app: GatewayApp
    source: StaticSource
    session: aiohttp.ClientSession
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.app.port}"

    @property
    def gateway(self) -> Gateway:
        return self.app.gateway

    async def post(
        self, path: str, body: Any, **kw: Any
    ) -> tuple[int, Any, aiohttp.ClientResponse]:
        async with self.session.post(self.url + path, json=body, **kw) as resp:
            data = await resp.read()
            try:
                return resp.status, json.loads(data), resp
            except ValueError:
                return resp.status, data, resp

    async def stream(
        self, body: dict[str, Any], path: str = "/v1/chat/completions", **kw: Any
    ) -> list[dict[str, Any]]:
        """Every chunk of a streamed answer (``[DONE]`` checked and dropped)."""
        chunks: list[dict[str, Any]] = []
        async with self.session.post(self.url + path, json={**body, "stream": True}, **kw) as r:
            assert r.status == 200, await r.text()
            lines = [line async for line in r.content]
        payloads = [ln[5:].strip() for ln in lines if ln.startswith(b"data:")]
        assert payloads[-1] == b"[DONE]"
        for payload in payloads[:-1]:
            chunks.append(json.loads(payload))
        return chunks


@pytest.fixture
async def make_gateway() -> AsyncIterator[Any]:
    """Factory: ``await make_gateway(snapshot, key_verifier=..., config=...)``."""
    made: list[GatewayUnderTest] = []

    async def make(
        snap: Snapshot,
        *,
        key_verifier: KeyVerifier | None = None,
        config: GatewayConfig = FAST_CONFIG,
    ) -> GatewayUnderTest:
        source = StaticSource(snap)
        app = create_app(source, key_verifier=key_verifier, config=config)
        await app.serve(host="127.0.0.1", port=0)
        session = aiohttp.ClientSession()
        gut = GatewayUnderTest(app=app, source=source, session=session)
        made.append(gut)
        await asyncio.wait_for(gut.gateway.synced.wait(), 2)
        return gut

    yield make
    for gut in made:
        await gut.session.close()
        await gut.app.close(grace_s=1.0)


def text_of(chunks: list[dict[str, Any]]) -> str:
    return "".join(
        (c["choices"][0].get("delta") or {}).get("content") or c["choices"][0].get("text") or ""
        for c in chunks
        if c.get("choices")
    )
