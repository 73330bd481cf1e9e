"""Back-pressure, probe and timeout edges: what must not eject a replica, the
total deadline of a request, and keep-alive comments while a stream waits."""

from __future__ import annotations

import asyncio
import dataclasses
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from llmfleet.backends.base import ReplicaState, ReplicaStatus
from llmfleet.gateway.health import Failure, HealthTracker, Prober
from llmfleet.gateway.pool import ConnectionPool
from tests.gateway.conftest import FAST_CONFIG, SimProcess, replica, service, snapshot, spawn

CHAT = {
    "model": "chat",
    "messages": [{"role": "user", "content": "hello"}],
    "max_tokens": 8,
    "temperature": 0,
}


@dataclasses.dataclass
class FakeEngine:
    """A small honest fake engine: chat answers ``chat_status``; ``/health`` is 200;
    ``/metrics`` is fine, 500, hangs or resets the connection."""

    server: TestServer
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture
async def fake_engine() -> AsyncIterator[Any]:
    servers: list[TestServer] = []

    async def make(*, chat_status: int = 429, metrics: str = "ok") -> FakeEngine:
        async def chat(request: web.Request) -> web.Response:
            await request.read()
            return web.json_response({"error": {"message": "busy"}}, status=chat_status)

        async def health(_request: web.Request) -> web.Response:
            return web.json_response({"status": "ok"})

        async def metrics_page(request: web.Request) -> web.Response:
            if metrics == "hang":
                await asyncio.sleep(2)
            if metrics == "reset" and request.transport is not None:
                request.transport.close()
            status = 500 if metrics == "500" else 200
            return web.Response(text="sim:requests_waiting 3\n", status=status)

        app = web.Application()
        app.router.add_post("/v1/chat/completions", chat)
        app.router.add_get("/health", health)
        app.router.add_get("/metrics", metrics_page)
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        servers.append(server)
        assert server.port is not None
        return FakeEngine(server, server.port)

    yield make
    for server in servers:
        await server.close()


def fake_replica(engine: FakeEngine, index: int) -> ReplicaStatus:
    return replica_on(engine.port, index)


def replica_on(port: int, index: int) -> ReplicaStatus:
    return ReplicaStatus(
        replica_id=f"chat-{index}",
        environment="test",
        service="chat",
        slot=index,
        runtime_hash="h",
        engine="sim",
        engine_version="1.2.0",
        state=ReplicaState.READY,
        port=port,
        served_name="chat",
    )


def test_a_429_never_ejects() -> None:
    """Back-pressure from an engine is not a fault: no count, no ejection."""
    tracker = HealthTracker(clock=lambda: 0.0, consecutive_5xx=1)
    for _ in range(10):
        assert not tracker.report_failure("r", Failure.BUSY)
    assert not tracker.is_ejected("r")


@pytest.mark.parametrize("resume", [True, False])
async def test_busy_engine_sends_the_request_elsewhere_without_ejection(
    sims, make_gateway, fake_engine, resume: bool
) -> None:
    """An engine answering 429: the request succeeds on the other replica and the busy
    one stays routable."""
    busy, good = await fake_engine(), spawn(sims)
    spec = service(routing={"strategy": "round-robin"}, retries={"resume_non_streaming": resume})
    gw = await make_gateway(
        snapshot({"chat": spec}, [fake_replica(busy, 0), replica("chat", good, 1)])
    )
    for _ in range(6):
        status, body, _ = await gw.post("/v1/chat/completions", CHAT)
        assert status == 200, body
    assert not gw.gateway.health.is_ejected("chat-0")
    assert gw.gateway.metrics.ejections.labels("chat", "chat-0")._value.get() == 0


async def test_only_busy_replicas_answer_429(make_gateway, fake_engine) -> None:
    """Every replica busy: the client gets the back-pressure as 429 with Retry-After."""
    busy = await fake_engine()
    gw = await make_gateway(snapshot({"chat": service()}, [fake_replica(busy, 0)]))
    status, body, resp = await gw.post("/v1/chat/completions", CHAT)
    assert status == 429, body
    assert "Retry-After" in resp.headers
    assert not gw.gateway.health.is_ejected("chat-0")


@pytest.mark.parametrize("metrics", ["500", "hang", "reset"])
async def test_failing_metrics_do_not_eject_a_healthy_replica(fake_engine, metrics: str) -> None:
    """``/health`` passing and ``/metrics`` failing (500, hanging past the probe timeout,
    connection reset): the replica stays in; only its stale queue length is forgotten."""
    engine = await fake_engine(metrics=metrics)
    tracker = HealthTracker(clock=lambda: 0.0)
    # 1 s: past it the hanging /metrics (2 s), within it /health on a busy machine (with
    # 0.2 s a health answer late under two test workers ejected the replica)
    prober = Prober(tracker, lambda: [fake_replica(engine, 0)], timeout_s=1.0)
    prober.waiting["chat-0"] = 7
    pool = ConnectionPool()
    await prober.probe_all(pool)
    pool.close()
    assert not tracker.is_ejected("chat-0")
    assert "chat-0" not in prober.waiting


async def test_working_metrics_record_the_queue(fake_engine) -> None:
    """The same probe against a good ``/metrics`` records the engine's queue length."""
    engine = await fake_engine()
    prober = Prober(HealthTracker(clock=lambda: 0.0), lambda: [fake_replica(engine, 0)])
    pool = ConnectionPool()
    await prober.probe_all(pool)
    await prober.probe_all(pool)  # again, on the kept-alive connection
    pool.close()
    assert prober.waiting == {"chat-0": 3}


async def test_a_dead_replica_fails_its_probe_and_is_ejected() -> None:
    """Nothing listening on the replica's port: the probe fails fast and ejects it."""
    tracker = HealthTracker(clock=lambda: 0.0)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    dead = replica_on(port, 0)
    prober = Prober(tracker, lambda: [dead], timeout_s=1.0)
    pool = ConnectionPool()
    await prober.probe_all(pool)
    pool.close()
    assert tracker.is_ejected("chat-0")


@pytest.mark.parametrize("stream_upstream", [True, False])
async def test_total_timeout_is_504(sims, make_gateway, stream_upstream: bool) -> None:
    """A steady but slow answer (never idle) is cut at timeouts.total_s: 504."""
    sim = spawn(sims, "--tps", "10", "--output-tokens", "40")
    spec = service(
        timeouts={"total_s": 0.5, "idle_s": 2, "first_byte_s": 10},
        retries={"resume_non_streaming": stream_upstream},
    )
    gw = await make_gateway(snapshot({"chat": spec}, [replica("chat", sim, 0)]))
    loop = asyncio.get_running_loop()
    started = loop.time()
    status, body, _ = await gw.post("/v1/chat/completions", {**CHAT, "max_tokens": 40})
    assert status == 504, body
    assert body["error"]["code"] == "upstream_timeout"
    assert "total_s" in body["error"]["message"]
    assert loop.time() - started < 2
    assert gw.gateway.router.in_flight == {}


async def test_total_timeout_ends_a_started_stream_with_an_error_event(sims, make_gateway) -> None:
    """Past total_s mid-stream: the client gets an error event and the stream ends."""
    sim = spawn(sims, "--tps", "10", "--output-tokens", "40")
    spec = service(timeouts={"total_s": 0.5, "idle_s": 2})
    gw = await make_gateway(snapshot({"chat": spec}, [replica("chat", sim, 0)]))
    async with gw.session.post(
        gw.url + "/v1/chat/completions", json={**CHAT, "max_tokens": 40, "stream": True}
    ) as resp:
        assert resp.status == 200
        data = await resp.read()
    assert b"upstream_timeout" in data


async def test_waiting_stream_gets_keep_alive_comments(
    sims: list[SimProcess], make_gateway
) -> None:
    """A stream whose only replica died mid-answer gets SSE comments while it waits for
    the replica to come back, then the rest of the answer."""
    sim = spawn(sims, "--output-tokens", "20", "--crash-after-tokens", "6")
    config = dataclasses.replace(FAST_CONFIG, keepalive_s=0.05)
    gw = await make_gateway(snapshot({"chat": service()}, [replica("chat", sim, 0)]), config=config)
    body = {**CHAT, "max_tokens": 30, "stream": True}
    async with gw.session.post(gw.url + "/v1/chat/completions", json=body) as resp:
        assert resp.status == 200
        assert await asyncio.to_thread(sim.wait_exit) == 1
        await asyncio.sleep(0.4)
        sim.stop()
        sim.args = [a for a in sim.args if a not in ("--crash-after-tokens", "6")]
        sim.start()
        data = await resp.read()
    assert data.count(b": keep-alive\n\n") >= 2
    assert data.endswith(b"data: [DONE]\n\n")
