"""Tokens the engine produced for a client that went away are still that client's.

A client that reads part of a stream and disconnects never gets the usage chunk
(the engine sends it last), yet the engine did the work: the tokens the gateway
received count against the key's tokens-per-minute and in
``llmfleet_gateway_completion_tokens_total``, or a client could stream for free
by hanging up before the end.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import orjson
import pytest

from llmfleet.gateway.keys import KeyInfo, StaticKeyVerifier
from tests.gateway.conftest import GatewayUnderTest, replica, service, snapshot, spawn

CHAT = {"model": "chat", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 400}
KEY = {"Authorization": "Bearer sk-tpm"}
READ = 8
"""content chunks the client reads before it hangs up."""


async def eventually(done: Callable[[], bool], *, within_s: float = 5.0) -> None:
    """Wait (on the loop's clock) until ``done()``; fail after ``within_s``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    while not done():
        assert loop.time() < deadline, "the condition never came true"
        await asyncio.sleep(0.01)


def completion_tokens(gw: GatewayUnderTest) -> float:
    value = gw.gateway.metrics.registry.get_sample_value(
        "llmfleet_gateway_completion_tokens_total", {"service": "chat"}
    )
    return value or 0.0


async def read_then_hang_up(gw: GatewayUnderTest, path: str, body: dict[str, Any]) -> int:
    """Stream ``body``, read ``READ`` chunks with text, close the connection; the
    number of chunks read."""
    read = 0
    async with gw.session.post(gw.url + path, json=body, headers=KEY) as resp:
        assert resp.status == 200, await resp.text()
        async for line in resp.content:
            if line.startswith(b"data: {"):
                choice = orjson.loads(line[6:])["choices"][0]
                if (choice.get("delta") or {}).get("content") or choice.get("text"):
                    read += 1
            if read >= READ:
                resp.close()  # the client hangs up mid-answer
                break
    return read


async def wait_then_hang_up(gw: GatewayUnderTest, path: str, body: dict[str, Any]) -> int:
    """Ask for ``body`` as one JSON answer (which the gateway streams from the engine),
    hang up once the gateway has received ``READ`` bursts of tokens; ``READ``."""
    asking = asyncio.ensure_future(gw.post(path, body, headers=KEY))
    timer = gw.gateway.metrics.token_timer("chat")
    await eventually(lambda: sum(timer.itl.counts) >= READ)
    asking.cancel()  # closes the client's connection
    with contextlib.suppress(asyncio.CancelledError):
        await asking
    return READ


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/chat/completions", {**CHAT, "stream": True}),
        (
            "/v1/completions",
            {"model": "chat", "prompt": "hello", "max_tokens": 400, "stream": True},
        ),
        ("/v1/chat/completions", CHAT),
    ],
)
async def test_a_client_that_hangs_up_is_charged_for_the_tokens_it_got(
    sims, make_gateway, path: str, body: dict[str, Any]
) -> None:
    """Disconnect after a few chunks (streamed, or a JSON answer the gateway streams
    from the engine to keep its tokens on failover): the key's tokens-per-minute and the completion
    token counter both include at least the tokens streamed, so the key (tpm=5) is
    refused its next request."""
    sim = spawn(sims, "--tps", "40", "--output-tokens", "400")
    keys = StaticKeyVerifier({"sk-tpm": KeyInfo(id="k", name="tpm", tpm=READ - 2)})
    snap = snapshot({"chat": service(auth={"required": True})}, [replica("chat", sim, 0)])
    gw = await make_gateway(snap, key_verifier=keys)
    hang_up = read_then_hang_up if body.get("stream") else wait_then_hang_up
    assert await hang_up(gw, path, body) == READ
    await eventually(lambda: not gw.gateway.router.in_flight)
    await eventually(lambda: completion_tokens(gw) > 0)
    assert READ <= completion_tokens(gw) < 400
    status, answer, _ = await gw.post("/v1/chat/completions", CHAT, headers=KEY)
    assert status == 429, answer
    assert "tokens per minute" in answer["error"]["message"]
