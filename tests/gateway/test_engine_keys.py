"""The gateway sends each replica the key the agent made for it.

Real sim processes started with a key in their environment (as the local agent
starts them) and an in-process gateway fed the agent's JSON, keys included.
Requests, streams, the prober's ``/health`` and its ``/metrics`` read all carry
the replica's own key; a replica that refuses the gateway's key is the
gateway's problem (a failed attempt, another replica), never a 401 handed to a
client whose own key was fine.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from llmfleet.gateway.replicas import AgentSource, snapshot_from_json
from tests.gateway.conftest import SimProcess, replica, service, spawn, text_of

KEY_ENV = "LLMFLEET_SIM_API_KEY"
CHAT = {"model": "chat", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3}


def keyed(sims: list[SimProcess], monkeypatch: pytest.MonkeyPatch, key: str) -> SimProcess:
    """A sim process with ``key`` in its environment."""
    with monkeypatch.context() as patch:
        patch.setenv(KEY_ENV, key)
        return spawn(sims)


def agent_body(sims: list[SimProcess], keys: list[str], **spec: Any) -> dict[str, Any]:
    """The agent's answer for one service whose replica i is ``sims[i]`` with ``keys[i]``."""
    return {
        "generation": 1,
        "services": {"chat": service(**spec).model_dump(mode="json")},
        "replicas": [replica("chat", sim, i).to_json() for i, sim in enumerate(sims)],
        "engine_keys": {f"chat-{i}": key for i, key in enumerate(keys)},
    }


async def test_requests_streams_and_probes_carry_each_replicas_key(
    sims: list[SimProcess], monkeypatch: pytest.MonkeyPatch, make_gateway: Any
) -> None:
    keys = [secrets.token_urlsafe(32), secrets.token_urlsafe(32)]
    engines = [keyed(sims, monkeypatch, key) for key in keys]
    body = agent_body(engines, keys, routing={"strategy": "round-robin"})
    gw = await make_gateway(snapshot_from_json(body))
    for _ in range(4):
        status, answer, _ = await gw.post("/v1/chat/completions", CHAT)
        assert status == 200, answer
        assert text_of(await gw.stream(CHAT))
    served = {r: gw.gateway.metrics.upstream.labels("chat", r).value for r in ("chat-0", "chat-1")}
    assert all(count > 0 for count in served.values()), served
    prober = gw.gateway.prober
    await prober.probe_all(gw.gateway.failover.upstream.pool)
    assert set(prober.waiting) == {"chat-0", "chat-1"}  # /metrics read with the key
    assert not any(gw.gateway.health.is_ejected(r) for r in ("chat-0", "chat-1"))


async def test_a_replica_refusing_the_gateways_key_is_a_failed_attempt(
    sims: list[SimProcess], monkeypatch: pytest.MonkeyPatch, make_gateway: Any
) -> None:
    """One replica holds another key: requests go to the other one, the client sees 200."""
    good, bad = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    engines = [keyed(sims, monkeypatch, good), keyed(sims, monkeypatch, bad)]
    body = agent_body(engines, [good, "stale-key"], routing={"strategy": "round-robin"})
    gw = await make_gateway(snapshot_from_json(body))
    for _ in range(4):
        status, answer, _ = await gw.post("/v1/chat/completions", CHAT)
        assert status == 200, answer


async def test_no_replica_accepting_the_key_is_503_not_401(
    sims: list[SimProcess], monkeypatch: pytest.MonkeyPatch, make_gateway: Any
) -> None:
    """The client's key was fine; the engine's 401 is the gateway's, so it says 503."""
    engine = keyed(sims, monkeypatch, secrets.token_urlsafe(32))
    gw = await make_gateway(snapshot_from_json(agent_body([engine], ["stale-key"])))
    status, answer, _ = await gw.post("/v1/chat/completions", CHAT)
    assert status == 503, answer
    assert "Invalid API Key" not in str(answer) and "stale-key" not in str(answer)


async def test_agent_source_asks_for_the_keys_and_keeps_them_out_of_repr(tmp_path: Path) -> None:
    """The gateway asks the agent (its private socket) for the engine keys; a snapshot
    printed in a log line does not show them."""
    queries: list[dict[str, str]] = []
    body = {
        "generation": 3,
        "services": {},
        "replicas": [],
        "engine_keys": {"chat-0": "k0-secret"},
    }

    async def environment(request: web.Request) -> web.Response:
        queries.append(dict(request.query))
        return web.json_response(body)

    app = web.Application()
    app.router.add_get("/v1/environments/{env}", environment)
    runner = web.AppRunner(app)
    await runner.setup()
    socket_path = str(tmp_path / "agent.sock")
    await web.UnixSite(runner, socket_path).start()
    try:
        watch = AgentSource(socket_path, "test", poll_timeout_s=0.2).watch()
        assert isinstance(watch, AsyncGenerator)
        snapshot = await asyncio.wait_for(anext(watch), 5)
        await watch.aclose()
    finally:
        await runner.cleanup()
    assert queries[0]["engine_keys"] == "1"
    assert snapshot.engine_keys == {"chat-0": "k0-secret"}
    assert "k0-secret" not in repr(snapshot)


@pytest.mark.parametrize("key", ["a\r\nX-Evil: 1", "two words", 5, ""])
def test_an_engine_key_that_could_not_be_a_header_is_a_malformed_answer(key: object) -> None:
    """A key with CR/LF would write headers of its own: the agent's answer is refused."""
    with pytest.raises(ValueError, match="not a header token"):
        snapshot_from_json(
            {"generation": 1, "services": {}, "replicas": [], "engine_keys": {"r": key}}
        )
