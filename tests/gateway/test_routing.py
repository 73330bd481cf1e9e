"""Routing against real sims: round-robin spreads, least-load avoids a busy
replica, prefix affinity keeps a prefix on one replica and spills over its bound."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp

from llmfleet.gateway.balancing import prefix_key_of, rank_replicas
from tests.gateway.conftest import replica, service, snapshot, spawn


def chat(content: str, **extra: Any) -> dict[str, Any]:
    return {"model": "chat", "messages": [{"role": "user", "content": content}], **extra}


def served(gw: Any, replica_id: str) -> float:
    return gw.gateway.metrics.upstream.labels("chat", replica_id).value


async def two_replicas(
    sims: list[Any],
    make_gateway: Any,
    strategy: str,
    *flags: str,
    first_flags: tuple[str, ...] = (),
) -> tuple[Any, Any, Any]:
    a, b = spawn(sims, *flags, *first_flags), spawn(sims, *flags)
    spec = service(routing={"strategy": strategy, "prefix_chars": 64, "load_factor": 1.25})
    gw = await make_gateway(
        snapshot({"chat": spec}, [replica("chat", a, 0), replica("chat", b, 1)])
    )
    return gw, a, b


async def test_round_robin_alternates(sims, make_gateway) -> None:
    """Round-robin sends sequential requests to both replicas equally."""
    gw, _, _ = await two_replicas(sims, make_gateway, "round-robin")
    for index in range(6):
        status, _, _ = await gw.post("/v1/chat/completions", chat(f"q{index}"))
        assert status == 200
    assert served(gw, "chat-0") == served(gw, "chat-1") == 3


async def test_least_load_spreads_in_flight_requests(sims, make_gateway) -> None:
    """Concurrent long requests are spread by in-flight count."""
    gw, _, _ = await two_replicas(
        sims, make_gateway, "least-load", "--tps", "40", "--output-tokens", "20"
    )
    await asyncio.gather(*(gw.post("/v1/chat/completions", chat(f"q{i}")) for i in range(4)))
    assert served(gw, "chat-0") == served(gw, "chat-1") == 2


async def test_least_load_avoids_a_replica_with_an_engine_queue(sims, make_gateway) -> None:
    """A replica whose engine reports waiting requests (other clients) gets none."""
    gw, busy, _ = await two_replicas(
        sims,
        make_gateway,
        "least-load",
        "--tps",
        "20",
        "--output-tokens",
        "40",
        first_flags=("--slots", "1"),
    )
    async with aiohttp.ClientSession() as direct:
        hogs = [
            asyncio.create_task(
                direct.post(busy.url + "/v1/chat/completions", json=chat(f"hog{i}"))
            )
            for i in range(3)
        ]
        for _ in range(100):
            if gw.gateway.prober.waiting.get("chat-0", 0) >= 2:
                break
            await asyncio.sleep(0.02)
        for index in range(4):
            status, _, _ = await gw.post("/v1/chat/completions", chat(f"q{index}", max_tokens=2))
            assert status == 200
        assert served(gw, "chat-0") == 0
        assert served(gw, "chat-1") == 4
        for hog in hogs:
            hog.cancel()


async def test_prefix_affinity_keeps_a_prefix_on_one_replica(sims, make_gateway) -> None:
    """Turns of one conversation all go to the replica that ranks first for its prefix."""
    gw, _, _ = await two_replicas(sims, make_gateway, "prefix-affinity")
    system = {"role": "system", "content": "You are a helpful assistant. " * 4}
    messages = [system, {"role": "user", "content": "first question"}]
    key = prefix_key_of({"messages": messages}, 64)
    assert key is not None
    home = rank_replicas(["chat-0", "chat-1"], key)[0]
    for turn in range(5):
        body = {"model": "chat", "messages": messages}
        status, answer, _ = await gw.post("/v1/chat/completions", body)
        assert status == 200
        messages = [
            *messages,
            answer["choices"][0]["message"],
            {"role": "user", "content": f"follow-up {turn}"},
        ]
    assert served(gw, home) == 5


async def test_prefix_affinity_spills_over_its_load_bound(sims, make_gateway) -> None:
    """A hot prefix sent concurrently spills to the second replica past the bound."""
    gw, _, _ = await two_replicas(
        sims, make_gateway, "prefix-affinity", "--tps", "40", "--output-tokens", "20"
    )
    body = chat("the same hot prompt for everybody")
    key = prefix_key_of(body, 64)
    assert key is not None
    home, other = rank_replicas(["chat-0", "chat-1"], key)
    results = await asyncio.gather(*(gw.post("/v1/chat/completions", body) for _ in range(6)))
    assert all(status == 200 for status, _, _ in results)
    assert served(gw, home) >= served(gw, other) >= 1
