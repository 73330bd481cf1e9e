"""Admission control, API keys and per-key quotas, end to end."""

from __future__ import annotations

import asyncio
from typing import Any

from llmfleet.gateway.keys import KeyInfo, StaticKeyVerifier
from tests.gateway.conftest import replica, service, snapshot, spawn

CHAT = {"model": "chat", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 4}


async def test_queue_full_is_429_with_retry_after(sims, make_gateway) -> None:
    """One slot busy, one request queued: the next one gets 429 queue_full at once."""
    sim = spawn(sims, "--tps", "20", "--output-tokens", "20")
    spec = service(admission={"queue_size": 1, "max_in_flight_per_replica": 1, "max_wait_s": 5})
    gw = await make_gateway(snapshot({"chat": spec}, [replica("chat", sim, 0)]))
    long = {**CHAT, "max_tokens": 20}
    first = asyncio.create_task(gw.post("/v1/chat/completions", long))
    await asyncio.sleep(0.1)
    queued = asyncio.create_task(gw.post("/v1/chat/completions", long))
    await asyncio.sleep(0.05)
    assert gw.gateway.router.queue_depth("chat") == 1
    status, body, resp = await gw.post("/v1/chat/completions", CHAT)
    assert status == 429
    assert body["error"]["code"] == "queue_full"
    assert int(resp.headers["Retry-After"]) >= 1
    assert [(await t)[0] for t in (first, queued)] == [200, 200]


async def test_queue_wait_over_max_wait_is_429(sims, make_gateway) -> None:
    """A queued request that gets no slot within max_wait_s is answered 429."""
    sim = spawn(sims, "--tps", "20", "--output-tokens", "20")
    spec = service(admission={"queue_size": 4, "max_in_flight_per_replica": 1, "max_wait_s": 0.2})
    gw = await make_gateway(snapshot({"chat": spec}, [replica("chat", sim, 0)]))
    first = asyncio.create_task(gw.post("/v1/chat/completions", {**CHAT, "max_tokens": 20}))
    await asyncio.sleep(0.1)
    status, _, resp = await gw.post("/v1/chat/completions", CHAT)
    assert status == 429
    assert "Retry-After" in resp.headers
    assert (await first)[0] == 200


def keyed(sims: list[Any]) -> tuple[Any, StaticKeyVerifier]:
    sim = spawn(sims)
    keys = StaticKeyVerifier(
        {
            "sk-good": KeyInfo(id="1", name="good"),
            "sk-other": KeyInfo(id="2", name="other", services=frozenset({"other"})),
            "sk-rpm": KeyInfo(id="3", name="rpm", rpm=2),
            "sk-tpm": KeyInfo(id="4", name="tpm", tpm=10),
        }
    )
    snap = snapshot({"chat": service(auth={"required": True})}, [replica("chat", sim, 0)])
    return snap, keys


def bearer(secret: str) -> dict[str, dict[str, str]]:
    return {"headers": {"Authorization": f"Bearer {secret}"}}


async def test_keys_missing_wrong_and_out_of_scope(sims, make_gateway) -> None:
    """No key 401, unknown key 401, key for another service 403, valid key 200."""
    snap, keys = keyed(sims)
    gw = await make_gateway(snap, key_verifier=keys)
    status, body, _ = await gw.post("/v1/chat/completions", CHAT)
    assert (status, body["error"]["type"]) == (401, "authentication_error")
    status, _, _ = await gw.post("/v1/chat/completions", CHAT, **bearer("sk-wrong"))
    assert status == 401
    status, body, _ = await gw.post("/v1/chat/completions", CHAT, **bearer("sk-other"))
    assert (status, body["error"]["type"]) == (403, "permission_error")
    status, _, _ = await gw.post("/v1/chat/completions", CHAT, **bearer("sk-good"))
    assert status == 200


async def test_requests_per_minute_limit(sims, make_gateway) -> None:
    """A key with rpm=2 gets 429 with Retry-After on its third request."""
    snap, keys = keyed(sims)
    gw = await make_gateway(snap, key_verifier=keys)
    for _ in range(2):
        assert (await gw.post("/v1/chat/completions", CHAT, **bearer("sk-rpm")))[0] == 200
    status, body, resp = await gw.post("/v1/chat/completions", CHAT, **bearer("sk-rpm"))
    assert status == 429
    assert body["error"]["type"] == "rate_limit_error"
    assert 1 <= int(resp.headers["Retry-After"]) <= 30


async def test_tokens_per_minute_limit(sims, make_gateway) -> None:
    """A key with tpm=10 that spent more than 10 tokens is refused until it refills."""
    snap, keys = keyed(sims)
    gw = await make_gateway(snap, key_verifier=keys)
    body = {**CHAT, "max_tokens": 12}
    assert (await gw.post("/v1/chat/completions", body, **bearer("sk-tpm")))[0] == 200
    status, _, resp = await gw.post("/v1/chat/completions", body, **bearer("sk-tpm"))
    assert status == 429
    assert int(resp.headers["Retry-After"]) >= 1
