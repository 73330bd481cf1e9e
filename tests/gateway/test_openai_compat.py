"""The gateway behaves as OpenAI's API does where clients look: model lookups, request
ids, rate-limit headers, refused fields, cached tokens, and what a request log says."""

from __future__ import annotations

import asyncio
import io
import json
from dataclasses import replace
from typing import Any

import openai
import pytest

from llmfleet.gateway.keys import KeyInfo, StaticKeyVerifier
from llmfleet.observe.logs import JsonLinesBuffer
from llmfleet.observe.requests import RequestObserver
from tests.gateway.conftest import GatewayUnderTest, replica, service, snapshot, spawn

CHAT = {"model": "chat", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 8}
SECRET = "sk-team-a-secret"
KEY = {"Authorization": f"Bearer {SECRET}"}
STARTED_AT = 1_790_000_000.5
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


async def one_sim_gateway(make_gateway: Any, sims: list[Any], *args: str, **kw: Any) -> Any:
    sim = spawn(sims, *args)
    ready = replace(replica("chat", sim, 0), started_at=STARTED_AT)
    verifier = kw.pop("key_verifier", None)
    return await make_gateway(snapshot({"chat": service(**kw)}, [ready]), key_verifier=verifier)


def with_log(gw: GatewayUnderTest) -> io.StringIO:
    """Turn the gateway's request log on, into a string."""
    out = io.StringIO()
    lines = JsonLinesBuffer(out, service_name="llmfleet-gateway", logger="test")
    loop = asyncio.get_running_loop()
    gw.gateway.observe = RequestObserver(
        tracing=None, lines=lines, log_prompts=False, clock=loop.time
    )
    return out


def log_lines(gw: GatewayUnderTest, out: io.StringIO) -> list[dict[str, Any]]:
    assert gw.gateway.observe is not None and gw.gateway.observe.lines is not None
    gw.gateway.observe.lines.flush()
    return [json.loads(line) for line in out.getvalue().splitlines()]


async def test_models_are_listed_and_retrieved_as_openai_does(make_gateway, sims) -> None:
    """``models.list`` gives when the service's replicas started (its revision was
    applied), ``models.retrieve`` finds one, and an unknown one is OpenAI's 404."""
    gw = await one_sim_gateway(make_gateway, sims)
    client = openai.AsyncOpenAI(base_url=gw.url + "/v1", api_key="none", max_retries=0)
    async with client:
        listed = await client.models.list()
        assert [(m.id, m.created) for m in listed.data] == [("chat", int(STARTED_AT))]
        found = await client.models.retrieve("chat")
        assert (found.id, found.object, found.created) == ("chat", "model", int(STARTED_AT))
        with pytest.raises(openai.NotFoundError) as caught:
            await client.models.retrieve("nope")
    error = caught.value.body
    assert isinstance(error, dict) and error["code"] == "model_not_found"
    assert "nope" in error["message"] and "chat" in error["message"]


async def test_every_answer_carries_a_request_id(make_gateway, sims) -> None:
    """200s, 4xx of the handlers and of the router all say ``x-request-id``; a client's
    own sane id is kept, a malformed one is replaced."""
    gw = await one_sim_gateway(make_gateway, sims)
    ids = []
    for path, body in (
        ("/v1/chat/completions", CHAT),
        ("/v1/nowhere", CHAT),
        ("/v1/chat/completions", {"model": "x"}),
    ):
        _, _, resp = await gw.post(path, body)
        ids.append(resp.headers.get("x-request-id"))
    assert all(ids) and len(set(ids)) == 3, ids
    _, _, resp = await gw.post("/v1/chat/completions", CHAT, headers={"x-request-id": "mine-42"})
    assert resp.headers["x-request-id"] == "mine-42"
    _, _, resp = await gw.post("/v1/chat/completions", CHAT, headers={"x-request-id": "a b" * 80})
    assert resp.headers["x-request-id"] not in ("", "a b" * 80)
    chunks_id = None
    async with gw.session.post(
        gw.url + "/v1/chat/completions", json={**CHAT, "stream": True}
    ) as resp:
        await resp.read()
        chunks_id = resp.headers.get("x-request-id")
    assert chunks_id


async def test_keyed_requests_with_quotas_get_openai_rate_limit_headers(make_gateway, sims) -> None:
    """x-ratelimit-{limit,remaining,reset}-{requests,tokens}, as OpenAI names them."""
    keys = StaticKeyVerifier({SECRET: KeyInfo(id="k1", name="team-a", rpm=60, tpm=1000)})
    gw = await one_sim_gateway(make_gateway, sims, auth={"required": True}, key_verifier=keys)
    status, body, resp = await gw.post("/v1/chat/completions", CHAT, headers=KEY)
    assert status == 200, body
    h = resp.headers
    assert h["x-ratelimit-limit-requests"] == "60"
    assert h["x-ratelimit-remaining-requests"] == "59"
    assert h["x-ratelimit-reset-requests"].endswith("s")
    assert h["x-ratelimit-limit-tokens"] == "1000"
    assert h["x-ratelimit-remaining-tokens"] == "1000"  # charged when the answer ends
    status, _, resp = await gw.post("/v1/chat/completions", CHAT, headers=KEY)
    used = body["usage"]["total_tokens"]
    assert int(resp.headers["x-ratelimit-remaining-tokens"]) == 1000 - used
    assert resp.headers["x-ratelimit-remaining-requests"] == "58"


async def test_tools_asked_of_an_engine_that_cannot_call_them_are_refused(
    make_gateway, sims
) -> None:
    """The sim answers in prose whatever ``tools`` says: 400 naming the field, not a
    silent answer without the tool call the client asked for."""
    gw = await one_sim_gateway(make_gateway, sims)
    body = {**CHAT, "tools": [WEATHER_TOOL], "tool_choice": "required"}
    status, answer, _ = await gw.post("/v1/chat/completions", body)
    assert status == 400, answer
    assert answer["error"]["param"] == "tools"
    assert "tools" in answer["error"]["message"]


async def test_cached_prompt_tokens_reach_the_client_and_the_metrics(make_gateway, sims) -> None:
    """``usage.prompt_tokens_details.cached_tokens`` passes through, streamed or not,
    and is counted next to the prompt tokens (the cache-hit ratio of a service)."""
    gw = await one_sim_gateway(make_gateway, sims)
    long = {**CHAT, "messages": [{"role": "user", "content": "the same long question " * 40}]}
    _, first, _ = await gw.post("/v1/chat/completions", long)
    _, second, _ = await gw.post("/v1/chat/completions", long)
    cached = second["usage"]["prompt_tokens_details"]["cached_tokens"]
    assert cached > 0, second["usage"]
    chunks = await gw.stream({**long, "stream_options": {"include_usage": True}})
    streamed = chunks[-1]["usage"]["prompt_tokens_details"]["cached_tokens"]
    assert streamed > 0
    registry = gw.gateway.metrics.registry
    counted = registry.get_sample_value(
        "llmfleet_gateway_prompt_tokens_cached_total", {"service": "chat"}
    )
    expected = first["usage"]["prompt_tokens_details"]["cached_tokens"] + cached + streamed
    assert counted == expected


async def test_a_client_that_hangs_up_is_499_in_the_log_and_the_metrics(make_gateway, sims) -> None:
    """nginx's 499 (client closed request) in both places: not 500, not 200."""
    gw = await one_sim_gateway(make_gateway, sims, "--tps", "20")
    out = with_log(gw)
    async with gw.session.post(
        gw.url + "/v1/chat/completions", json={**CHAT, "max_tokens": 200, "stream": True}
    ) as resp:
        async for line in resp.content:
            if line.startswith(b"data: {"):
                resp.close()
                break
    registry = gw.gateway.metrics.registry
    labels = {"service": "chat", "endpoint": "/v1/chat/completions"}
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5
    while (
        registry.get_sample_value("llmfleet_gateway_requests_total", {**labels, "status": "499"})
        != 1.0
    ):
        assert loop.time() < deadline, "the hang-up was never counted as 499"
        await asyncio.sleep(0.01)
    for status in ("200", "500"):
        counted = registry.get_sample_value(
            "llmfleet_gateway_requests_total", {**labels, "status": status}
        )
        assert not counted
    [line] = log_lines(gw, out)
    assert line["http.response.status_code"] == 499


async def test_request_log_lines_say_ttft_key_name_and_a_precise_duration(
    make_gateway, sims
) -> None:
    """A streamed request logs its time to first token; a keyed one its key's name
    (never the secret); the duration is not rounded to a millisecond."""
    keys = StaticKeyVerifier({SECRET: KeyInfo(id="k1", name="team-a")})
    gw = await one_sim_gateway(make_gateway, sims, auth={"required": True}, key_verifier=keys)
    out = with_log(gw)
    await gw.stream(CHAT, headers={**KEY, "x-request-id": "req-7"})
    await gw.post("/v1/chat/completions", CHAT, headers=KEY)
    streamed, plain = log_lines(gw, out)
    assert streamed["llmfleet.ttft_s"] is not None and streamed["llmfleet.ttft_s"] > 0
    assert streamed["llmfleet.key"] == plain["llmfleet.key"] == "team-a"
    assert streamed["http.request.id"] == "req-7"
    assert SECRET not in out.getvalue()
    durations = [line["event.duration"] for line in (streamed, plain)]
    assert all(d > 0 and d % 1_000_000 for d in durations), durations
