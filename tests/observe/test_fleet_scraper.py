"""The fleet endpoint's scraper: concurrent, cached, a dead target costs nothing extra."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from prometheus_client import generate_latest

from llmfleet.backends.base import ReplicaState, ReplicaStatus
from llmfleet.engines.sim.metrics import SimMetrics
from llmfleet.gateway.metrics import GatewayMetrics
from llmfleet.observe.fleet import MAX_LABEL_VALUE_CHARS, FleetScraper, Target, allowed_labels


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def status(rid: str, port: int, *, engine: str = "sim", service: str = "chat") -> ReplicaStatus:
    return ReplicaStatus(replica_id=rid, environment="production", service=service, slot=0,
                         runtime_hash="", engine=engine, engine_version="1",
                         state=ReplicaState.READY, port=port, ready_at=time.time() - 5)


@pytest.fixture
async def engines() -> AsyncIterator[tuple[list[int], list[int]]]:
    """Two sim-format /metrics servers, the second answering after 0.4 s; hit counts."""
    hits = [0, 0]
    runners, ports = [], []
    for index, delay in enumerate((0.0, 0.4)):
        metrics = SimMetrics(running=lambda: 2, waiting=lambda: 1)

        async def handle(_r: web.Request, i: int = index, d: float = delay,
                         m: SimMetrics = metrics) -> web.Response:
            hits[i] += 1
            await asyncio.sleep(d)
            return web.Response(body=m.render(), content_type="text/plain")

        app = web.Application()
        app.router.add_get("/metrics", handle)
        runner = web.AppRunner(app)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        runners.append(runner)
        ports.append(port)
    yield ports, hits
    for runner in runners:
        await runner.cleanup()


async def test_scrape_is_concurrent_cached_and_survives_dead_targets(
    engines: tuple[list[int], list[int]],
) -> None:
    ports, hits = engines
    targets = [Target(status("r0", ports[0])), Target(status("r1", ports[1])),
               Target(status("dead", free_port()))]
    loop = asyncio.get_running_loop()
    async with aiohttp.ClientSession() as session:
        scraper = FleetScraper(session=session, targets=lambda: targets, clock=loop.time,
                               wall_clock=time.time, cache_s=5.0, timeout_s=1.0)
        started = loop.time()
        first, second = await asyncio.gather(scraper.samples(), scraper.samples())
        took = loop.time() - started
        assert first is second and hits == [1, 1]  # concurrent callers share one scrape
        assert took < 0.8  # the slow target's 0.4 s is not added to the others
        assert await scraper.samples() is first and hits == [1, 1]  # cached
        text = await scraper.render()
    up = {line.split('replica="')[1].split('"')[0]: line.rsplit(" ", 1)[1]
          for line in text.splitlines() if line.startswith("llmfleet_target_up")}
    assert up == {"r0": "1", "r1": "1", "dead": "0"}
    assert 'llmfleet_requests_running{environment="production",service="chat",replica="r0"' in text
    assert 'state="ready"} 1' in text


async def test_allowed_spec_labels_are_added_to_replica_and_gateway_series(
    engines: tuple[list[int], list[int]],
) -> None:
    """Labels on the allow-list reach every series of their service, values capped; others
    (owner) stay out of the metrics, so what Prometheus indexes is bounded by the spec."""
    ports, _hits = engines
    gateway = GatewayMetrics()
    gateway.of("chat").count_request("/v1/chat/completions", "200")
    app = web.Application()
    body = generate_latest(gateway.registry)

    async def handle(_request: web.Request) -> web.Response:
        return web.Response(body=body, content_type="text/plain")

    app.router.add_get("/metrics", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    gw_port = free_port()
    await web.TCPSite(runner, "127.0.0.1", gw_port).start()
    labels = {"team": "search", "tier": "g" * 500, "owner": "alice"}
    targets = [Target(status("r0", ports[0])), Target(status("gw", gw_port, engine="gateway"))]
    loop = asyncio.get_running_loop()
    try:
        async with aiohttp.ClientSession() as session:
            scraper = FleetScraper(
                session=session, targets=lambda: targets, clock=loop.time, wall_clock=time.time,
                service_labels=lambda env, svc: allowed_labels(
                    labels if (env, svc) == ("production", "chat") else {}, ("team", "tier")))
            text = await scraper.render()
    finally:
        await runner.cleanup()
    tier = f'tier="{"g" * MAX_LABEL_VALUE_CHARS}"'
    for family in ("llmfleet_requests_running", "llmfleet_replica_state",
                   "llmfleet_gateway_requests_total", "llmfleet_target_up"):
        lines = [line for line in text.splitlines()
                 if line.startswith(family + "{") and 'engine="gateway"' not in line]
        assert lines and all('team="search"' in line and tier in line for line in lines), family
    assert "alice" not in text and "g" * (MAX_LABEL_VALUE_CHARS + 1) not in text
