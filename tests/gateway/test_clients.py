"""The official openai client works unchanged against the gateway; /metrics shows
the series."""

from __future__ import annotations

import asyncio

import openai

from tests.gateway.conftest import replica, service, snapshot, spawn

MESSAGES = [{"role": "user", "content": "write a haiku"}]


async def test_openai_client_sync_and_async_streaming(sims, make_gateway) -> None:
    """openai.OpenAI and AsyncOpenAI: plain, streamed, with usage, and a 404 error."""
    sim = spawn(sims)
    gw = await make_gateway(snapshot({"chat": service()}, [replica("chat", sim, 0)]))

    def sync_calls() -> tuple[str, str]:
        with openai.OpenAI(base_url=gw.url + "/v1", api_key="unused", max_retries=0) as client:
            plain = client.chat.completions.create(model="chat", messages=MESSAGES)
            stream = client.chat.completions.create(model="chat", messages=MESSAGES, stream=True)
            text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
            return plain.choices[0].message.content or "", text

    plain_text, streamed_text = await asyncio.to_thread(sync_calls)
    assert plain_text and plain_text == streamed_text

    async with openai.AsyncOpenAI(base_url=gw.url + "/v1", api_key="x", max_retries=0) as client:
        stream = await client.chat.completions.create(
            model="chat",
            messages=MESSAGES,
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = [chunk async for chunk in stream]
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == plain_text
        assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
        models = await client.models.list()
        assert [m.id for m in models.data] == ["chat"]
        try:
            await client.chat.completions.create(model="missing", messages=MESSAGES)
        except openai.NotFoundError as exc:
            assert "missing" in str(exc)
        else:
            raise AssertionError("expected a 404")


async def test_metrics_show_the_series(sims, make_gateway) -> None:
    """After a request, /metrics exposes requests, latencies, tokens and queue series."""
    sim = spawn(sims)
    gw = await make_gateway(snapshot({"chat": service()}, [replica("chat", sim, 0)]))
    await gw.stream({"model": "chat", "messages": MESSAGES})
    async with gw.session.get(gw.url + "/metrics") as resp:
        text = await resp.text()
    for series in (
        'llmfleet_gateway_requests_total{endpoint="/v1/chat/completions",service="chat",'
        'status="200"} 1.0',
        "llmfleet_gateway_time_to_first_token_seconds_bucket",
        "llmfleet_gateway_inter_token_latency_seconds_bucket",
        "llmfleet_gateway_request_duration_seconds_bucket",
        "llmfleet_gateway_overhead_seconds_bucket",
        'llmfleet_gateway_completion_tokens_total{service="chat"}',
        'llmfleet_gateway_prompt_tokens_total{service="chat"}',
        'llmfleet_gateway_queue_depth{service="chat"} 0.0',
        'llmfleet_gateway_in_flight{replica="chat-0",service="chat"} 0.0',
        'llmfleet_gateway_upstream_requests_total{replica="chat-0",service="chat"} 1.0',
    ):
        assert series in text, series
