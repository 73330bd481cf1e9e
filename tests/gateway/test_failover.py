"""Keeping requests alive: retries before the first token, and answers that
continue on another replica (or the same one once back) after it, equal to an
uninterrupted answer character for character."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp

from llmfleet.gateway.balancing import prefix_key_of, rank_replicas
from tests.gateway.conftest import SimProcess, replica, service, snapshot, spawn, text_of

LONG = ["--output-tokens", "20"]


def chat_body(content: str = "tell me a long story") -> dict[str, Any]:
    return {
        "model": "chat",
        "messages": [{"role": "user", "content": content}],
        "temperature": 0,
        "max_tokens": 30,
    }


async def direct(sim: SimProcess, body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The uninterrupted answer and usage, straight from a sim."""
    async with (
        aiohttp.ClientSession() as session,
        session.post(sim.url + "/v1/chat/completions", json={**body, "model": "chat"}) as resp,
    ):
        data = await resp.json()
    return data["choices"][0]["message"]["content"], data["usage"]


async def affinity_pair(
    sims: list[SimProcess], make_gateway: Any, body: dict[str, Any], first_flags: list[str]
) -> tuple[Any, SimProcess, SimProcess]:
    """Two replicas under prefix affinity, the one this prompt goes to first started
    with ``first_flags``; returns (gateway, first, other)."""
    first = spawn(sims, *LONG, *first_flags)
    other = spawn(sims, *LONG)
    spec = service(routing={"strategy": "prefix-affinity", "prefix_chars": 64})
    key = prefix_key_of(body, 64)
    assert key is not None
    ranked = rank_replicas(["chat-0", "chat-1"], key)
    by_id = {ranked[0]: first, ranked[1]: other}
    replicas = [replica("chat", by_id[rid], int(rid[-1])) for rid in ("chat-0", "chat-1")]
    return await make_gateway(snapshot({"chat": spec}, replicas)), first, other


async def test_5xx_is_retried_on_the_other_replica(sims, make_gateway) -> None:
    """A replica answering 500 costs the client nothing: 200 from the other, retries counted."""
    bad, good = spawn(sims, "--error-rate", "1.0"), spawn(sims)
    spec = service(routing={"strategy": "round-robin"})
    gw = await make_gateway(
        snapshot({"chat": spec}, [replica("chat", bad, 0), replica("chat", good, 1)])
    )
    for _ in range(4):
        status, body, _ = await gw.post("/v1/chat/completions", chat_body())
        assert status == 200, body
    retries = gw.gateway.metrics.retries.labels("chat")._value.get()
    assert retries >= 1


async def test_stream_survives_a_crash_mid_answer(sims, make_gateway) -> None:
    """A replica dying after 5 tokens: the stream goes on from the other replica with
    the same id, no text lost or repeated, and usage equal to an uninterrupted run."""
    body = chat_body()
    gw, first, other = await affinity_pair(sims, make_gateway, body, ["--crash-after-tokens", "5"])
    expected, usage = await direct(other, body)
    chunks = await gw.stream({**body, "stream_options": {"include_usage": True}})
    assert first.wait_exit() == 1
    assert text_of(chunks) == expected
    assert len({c["id"] for c in chunks}) == 1
    assert sum(1 for c in chunks if (c["choices"] or [{}])[0].get("delta", {}).get("role")) == 1
    merged = chunks[-1]["usage"]
    for field in ("prompt_tokens", "completion_tokens", "total_tokens"):
        assert merged[field] == usage[field], (merged, usage)
    assert gw.gateway.metrics.resumed.labels("chat")._value.get() == 1


async def test_non_streaming_survives_a_crash_mid_answer(sims, make_gateway) -> None:
    """The same continuation for a non-streaming request: one full, correct body."""
    body = chat_body()
    gw, _first, other = await affinity_pair(sims, make_gateway, body, ["--crash-after-tokens", "7"])
    expected, usage = await direct(other, body)
    status, answer, _ = await gw.post("/v1/chat/completions", body)
    assert status == 200, answer
    assert answer["choices"][0]["message"]["content"] == expected
    assert answer["usage"]["prompt_tokens"] == usage["prompt_tokens"]
    assert answer["usage"]["completion_tokens"] == usage["completion_tokens"]
    assert gw.gateway.metrics.resumed.labels("chat")._value.get() == 1


async def test_hung_replica_hits_the_idle_timeout_then_resumes(sims, make_gateway) -> None:
    """A replica that stalls after 5 tokens: after idle_s the answer continues elsewhere."""
    body = chat_body()
    gw, _first, other = await affinity_pair(sims, make_gateway, body, ["--hang-after-tokens", "5"])
    expected, _ = await direct(other, body)
    chunks = await gw.stream(body)
    assert text_of(chunks) == expected


async def test_single_replica_restart_within_the_wait_bound_resumes(sims, make_gateway) -> None:
    """One replica crashes mid-answer and comes back: the gateway waits and continues."""
    sim = spawn(sims, *LONG, "--crash-after-tokens", "6")
    gw = await make_gateway(snapshot({"chat": service()}, [replica("chat", sim, 0)]))
    body = chat_body()
    pending = asyncio.create_task(gw.stream(body))
    assert await asyncio.to_thread(sim.wait_exit) == 1
    sim.stop()
    sim.args = [a for a in sim.args if a not in ("--crash-after-tokens", "6")]
    sim.start()
    chunks = await pending
    expected, _ = await direct(sim, body)
    assert text_of(chunks) == expected
    assert len({c["id"] for c in chunks}) == 1
    assert gw.gateway.metrics.resumed.labels("chat")._value.get() == 1


async def test_client_disconnect_cancels_the_upstream(sims, make_gateway) -> None:
    """A client leaving mid-stream frees the engine's slot (requests_running back to 0)."""
    sim = spawn(sims, "--tps", "50", "--output-tokens", "200")
    gw = await make_gateway(snapshot({"chat": service()}, [replica("chat", sim, 0)]))
    async with gw.session.post(
        gw.url + "/v1/chat/completions", json={**chat_body(), "max_tokens": 200, "stream": True}
    ) as resp:
        for _ in range(4):
            await resp.content.readline()
        assert await running(sim) == 1
        resp.close()
    for _ in range(50):
        if await running(sim) == 0:
            break
        await asyncio.sleep(0.02)
    assert await running(sim) == 0
    for _ in range(50):
        if not gw.gateway.router.in_flight:
            break
        await asyncio.sleep(0.02)
    assert gw.gateway.router.in_flight == {}


async def running(sim: SimProcess) -> int:
    async with aiohttp.ClientSession() as session, session.get(sim.url + "/metrics") as resp:
        text = await resp.text()
    line = next(ln for ln in text.splitlines() if ln.startswith("sim:requests_running"))
    return int(float(line.split()[-1]))


async def test_all_attempts_failing_gives_503_with_history(sims, make_gateway) -> None:
    """Every replica failing: 503 naming the attempts, within the attempts bound."""
    bad = spawn(sims, "--error-rate", "1.0")
    gw = await make_gateway(
        snapshot({"chat": service(retries={"attempts": 2})}, [replica("chat", bad, 0)])
    )
    status, body, _ = await gw.post("/v1/chat/completions", chat_body())
    assert status == 503
    assert "chat-0" in body["error"]["message"]
    json.dumps(body)
