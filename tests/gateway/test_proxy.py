"""The OpenAI API through the gateway against real sim processes: answers,
streaming, and every error status a client can provoke."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

from tests.gateway.conftest import FAST_CONFIG, replica, service, snapshot, spawn, text_of

CHAT = {"model": "chat", "messages": [{"role": "user", "content": "tell me a story"}]}


async def one_replica_gateway(sims: list[Any], make_gateway: Any, **spec: Any) -> Any:
    sim = spawn(sims)
    return await make_gateway(snapshot({"chat": service(**spec)}, [replica("chat", sim, 0)]))


async def test_chat_non_streaming_returns_one_completion(sims, make_gateway) -> None:
    """A plain chat request gets a chat.completion with text and usage."""
    gw = await one_replica_gateway(sims, make_gateway)
    status, body, _ = await gw.post("/v1/chat/completions", CHAT)
    assert status == 200, body
    assert body["object"] == "chat.completion"
    assert body["choices"][0]["message"]["content"].strip()
    assert body["choices"][0]["finish_reason"] == "stop"
    usage = body["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


async def test_chat_streaming_matches_non_streaming(sims, make_gateway) -> None:
    """Streaming yields the same text, one id, and a usage chunk only when asked."""
    gw = await one_replica_gateway(sims, make_gateway)
    _, whole, _ = await gw.post("/v1/chat/completions", CHAT)
    chunks = await gw.stream(CHAT)
    assert text_of(chunks) == whole["choices"][0]["message"]["content"]
    assert len({c["id"] for c in chunks}) == 1
    assert all(c.get("usage") is None for c in chunks)
    with_usage = await gw.stream({**CHAT, "stream_options": {"include_usage": True}})
    assert with_usage[-1]["choices"] == []
    assert with_usage[-1]["usage"] == whole["usage"]


async def test_completions_stream_and_plain(sims, make_gateway) -> None:
    """/v1/completions works streamed and not, with the same text."""
    gw = await one_replica_gateway(sims, make_gateway)
    body = {"model": "chat", "prompt": "once upon a time", "max_tokens": 8}
    status, whole, _ = await gw.post("/v1/completions", body)
    assert status == 200, whole
    assert whole["object"] == "text_completion"
    chunks = await gw.stream(body, path="/v1/completions")
    assert text_of(chunks) == whole["choices"][0]["text"]
    assert whole["usage"]["completion_tokens"] == 8


async def test_embeddings_and_models(sims, make_gateway) -> None:
    """Embeddings pass through; /v1/models lists the services."""
    gw = await one_replica_gateway(sims, make_gateway)
    status, body, _ = await gw.post("/v1/embeddings", {"model": "chat", "input": ["a", "b"]})
    assert status == 200, body
    assert len(body["data"]) == 2
    async with gw.session.get(gw.url + "/v1/models") as resp:
        models = await resp.json()
    assert [m["id"] for m in models["data"]] == ["chat"]


async def test_client_errors_are_openai_json(sims, make_gateway) -> None:
    """Unknown model 404, malformed JSON 400, missing messages 400, huge body 413."""
    gw = await one_replica_gateway(sims, make_gateway, admission={"max_body_bytes": 1000})
    status, body, _ = await gw.post("/v1/chat/completions", {**CHAT, "model": "nope"})
    assert status == 404
    assert body["error"]["code"] == "model_not_found"
    async with gw.session.post(gw.url + "/v1/chat/completions", data=b"{not json") as resp:
        assert resp.status == 400
        assert (await resp.json())["error"]["type"] == "invalid_request_error"
    status, body, _ = await gw.post("/v1/chat/completions", {"model": "chat"})
    assert status == 400
    big = {**CHAT, "messages": [{"role": "user", "content": "x" * 5000}]}
    status, body, _ = await gw.post("/v1/chat/completions", big)
    assert status == 413
    assert body["error"]["code"] == "request_too_large"


async def test_body_over_the_gateway_cap_is_413_before_reading(sims, make_gateway) -> None:
    """A body over the gateway-wide cap is refused from its Content-Length."""
    sim = spawn(sims)
    config = dataclasses.replace(FAST_CONFIG, max_body_bytes=10_000)
    gw = await make_gateway(snapshot({"chat": service()}, [replica("chat", sim, 0)]), config=config)
    async with gw.session.post(gw.url + "/v1/chat/completions", data=b"x" * 50_000) as resp:
        assert resp.status == 413


async def test_upstream_4xx_is_passed_on(sims, make_gateway) -> None:
    """An engine's own 400 (n=2 on the sim) reaches the client unchanged, not retried."""
    gw = await one_replica_gateway(sims, make_gateway)
    status, body, _ = await gw.post("/v1/chat/completions", {**CHAT, "n": 2})
    assert status == 400
    assert "n=1" in body["error"]["message"]


async def test_no_ready_replica_is_503_after_the_wait_bound(make_gateway) -> None:
    """With no routable replica the request waits wait_for_replica_s, then 503."""
    gw = await make_gateway(snapshot({"chat": service(retries={"wait_for_replica_s": 0.2})}, []))
    status, body, resp = await gw.post("/v1/chat/completions", CHAT)
    assert status == 503
    assert body["error"]["code"] == "no_ready_replica"
    assert "Retry-After" in resp.headers
    async with gw.session.get(gw.url + "/ready") as ready:
        assert ready.status == 503
    async with gw.session.get(gw.url + "/health") as health:
        assert health.status == 200


async def test_replica_appearing_during_the_wait_serves_the_request(sims, make_gateway) -> None:
    """A request waiting for a replica is served as soon as the source publishes one."""
    sim = spawn(sims)
    spec = {"chat": service()}
    gw = await make_gateway(snapshot(spec, []))
    pending = asyncio.create_task(gw.post("/v1/chat/completions", CHAT))
    await asyncio.sleep(0.1)
    gw.source.publish(snapshot(spec, [replica("chat", sim, 0)], generation=2))
    status, body, _ = await pending
    assert status == 200, body


async def test_unknown_routes_and_methods_are_openai_json(make_gateway) -> None:
    """No such path: 404; a path without that method: 405; HEAD on a GET route: its
    headers only; all errors as OpenAI JSON, none of them counted as a service's."""
    gw = await make_gateway(snapshot({"chat": service()}, []))
    async with gw.session.get(gw.url + "/v1/nope") as resp:
        assert resp.status == 404
        assert (await resp.json())["error"]["code"] == "not_found"
    async with gw.session.get(gw.url + "/v1/chat/completions") as resp:
        assert resp.status == 405
        assert (await resp.json())["error"]["code"] == "method_not_allowed"
    async with gw.session.head(gw.url + "/health") as resp:
        assert resp.status == 200
        assert await resp.read() == b""
    assert gw.gateway.metrics.requests.children == {}
