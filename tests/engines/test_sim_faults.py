"""Fault injection in-process: crash, hang, error rate, live changes via /sim/faults.

Crashes are observed through the injected exit recorder here; the real
``os._exit`` is exercised by the process tests.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from llmfleet.engines.sim.faults import Faults
from llmfleet.engines.sim.runtime import SimConfig
from llmfleet.engines.sim.testing import InProcessSim, serve_sim

CHAT = "/v1/chat/completions"
BODY = {"messages": [{"role": "user", "content": "hi"}], "stream": True}


async def read_tokens(response: Any, count: int) -> list[bytes]:
    """The next ``count`` content chunks of a chat stream."""
    tokens: list[bytes] = []
    while len(tokens) < count:
        line = await response.content.readline()
        assert line, "stream ended early"
        if b'"content":" ' in line:
            tokens.append(line)
    return tokens


async def test_crash_after_tokens_exits_after_the_nth_token_process_wide() -> None:
    async with serve_sim(SimConfig(output_tokens=4), Faults(crash_after_tokens=6)) as sim:
        await sim.client.post(CHAT, json={**BODY, "stream": False})
        assert sim.exits.calls == []
        response = await sim.client.post(CHAT, json=BODY)
        await read_tokens(response, 2)
        # the recorder does not stop the stream, so only its first call matters
        assert sim.exits.calls[0] == (1, "crash after 6 tokens (crash_after_tokens)")
        response.close()


async def test_hang_stalls_streams_until_faults_change() -> None:
    async with serve_sim(SimConfig(output_tokens=5), Faults(hang_after_tokens=3)) as sim:
        response = await sim.client.post(CHAT, json=BODY)
        await read_tokens(response, 3)
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(read_tokens(response, 1), 0.1)
        assert sim.runtime.running == 1
        cleared = await sim.client.post("/sim/faults", json={"hang_after_tokens": None})
        assert (await cleared.json())["hang_after_tokens"] is None
        rest = await asyncio.wait_for(response.text(), 1.0)
        assert rest.count('"content":" ') == 2
        assert rest.endswith("data: [DONE]\n\n")


async def test_hang_also_stalls_new_requests_before_their_first_token() -> None:
    async with serve_sim(faults=Faults(hang_after_tokens=0)) as sim:
        pending = asyncio.ensure_future(sim.client.post(CHAT, json={**BODY, "stream": False}))
        await asyncio.sleep(0.05)
        assert not pending.done() and sim.runtime.running == 1
        await sim.client.post("/sim/faults", json={"hang_after_tokens": None})
        response = await asyncio.wait_for(pending, 1.0)
        assert response.status == 200


async def test_error_rate_answers_openai_500s_on_a_seeded_schedule() -> None:
    async def statuses(sim: InProcessSim) -> list[int]:
        codes = []
        for _ in range(20):
            response = await sim.client.post("/v1/completions", json={"prompt": "x"})
            codes.append(response.status)
            if response.status == 500:
                error = (await response.json())["error"]
                assert error["type"] == "server_error" and error["code"] == 500
        return codes

    async with serve_sim(SimConfig(seed=3), Faults(error_rate=0.5)) as sim:
        first = await statuses(sim)
    async with serve_sim(SimConfig(seed=3), Faults(error_rate=0.5)) as sim:
        assert await statuses(sim) == first
        metrics = await (await sim.client.get("/metrics")).text()
        assert f'sim:requests_total{{status="500"}} {first.count(500)}.0' in metrics
    assert 0 < first.count(500) < 20


async def test_faults_are_read_and_changed_live_with_cli_names() -> None:
    async with serve_sim() as sim:
        current = await (await sim.client.get("/sim/faults")).json()
        assert current == Faults().to_json()
        changed = await sim.client.post("/sim/faults", json={"error_rate": 1.0})
        assert (await changed.json())["error_rate"] == 1.0
        failing = await sim.client.post("/v1/completions", json={"prompt": "x"})
        assert failing.status == 500
        for bad in (b"[1]", b'{"crash_after": 1}', b'{"error_rate": 3}', b"nope"):
            refused = await sim.client.post("/sim/faults", data=bad)
            assert refused.status == 400
            assert (await refused.json())["error"]["type"] == "invalid_request_error"


async def test_crash_set_live_cuts_the_stream_in_progress() -> None:
    async with serve_sim(SimConfig(tps=100, output_tokens=50)) as sim:
        response = await sim.client.post(CHAT, json=BODY)
        await read_tokens(response, 2)
        await sim.client.post("/sim/faults", json={"crash_after_tokens": 0})
        for _ in range(10):  # a token already on its way may still arrive first
            if sim.exits.calls:
                break
            await read_tokens(response, 1)
        assert sim.exits.calls and sim.exits.calls[0][0] == 1
        response.close()


async def test_fail_start_set_live_exits_the_process() -> None:
    async with serve_sim() as sim:
        answer = await sim.client.post("/sim/faults", json={"fail_start": True})
        assert answer.status == 200
        await asyncio.sleep(0.1)
        assert sim.exits.calls == [(1, "fail_start set live")]
