"""The sim engine's HTTP API in-process: OpenAI shapes, determinism, resume, slots."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from aiohttp import ClientResponse

from llmfleet.engines.sim.faults import Faults
from llmfleet.engines.sim.runtime import SimConfig
from llmfleet.engines.sim.testing import InProcessSim, serve_sim

CHAT = "/v1/chat/completions"
QUESTION = [{"role": "user", "content": "why is the sky blue"}]


def payloads(text: str) -> list[Any]:
    """The SSE events of a whole stream: parsed JSON, or the literal '[DONE]'."""
    events = [block[len("data: ") :] for block in text.split("\n\n") if block]
    return [event if event == "[DONE]" else json.loads(event) for event in events]


def streamed_text(events: list[Any]) -> str:
    parts = []
    for event in events:
        for choice in event["choices"] if isinstance(event, dict) else []:
            parts.append(choice.get("delta", {}).get("content") or choice.get("text") or "")
    return "".join(parts)


async def post(sim: InProcessSim, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = await sim.client.post(path, json=body)
    assert response.status == 200, await response.text()
    result: dict[str, Any] = await response.json()
    return result


async def stream(sim: InProcessSim, path: str, body: dict[str, Any]) -> list[Any]:
    response = await sim.client.post(path, json={**body, "stream": True})
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/event-stream")
    return payloads(await response.text())


@pytest.fixture
async def sim() -> Any:
    async with serve_sim(SimConfig(model_name="tiny")) as served:
        yield served


async def test_chat_answer_has_openai_shape_and_word_usage(sim: InProcessSim) -> None:
    body = await post(sim, CHAT, {"model": "anything", "messages": QUESTION})
    assert body["object"] == "chat.completion" and body["id"].startswith("chatcmpl-")
    assert body["model"] == "tiny"
    choice = body["choices"][0]
    assert choice["message"]["role"] == "assistant" and choice["finish_reason"] == "stop"
    words = choice["message"]["content"].split()
    usage = body["usage"]
    assert usage["prompt_tokens"] == 5 and usage["completion_tokens"] == len(words)
    assert usage["total_tokens"] == 5 + len(words)
    assert usage["prompt_tokens_details"] == {"cached_tokens": 0}


async def test_answers_depend_only_on_conversation_and_seed(sim: InProcessSim) -> None:
    first = await post(sim, CHAT, {"messages": QUESTION, "temperature": 1.5})
    again = await post(sim, CHAT, {"messages": QUESTION, "temperature": 0})
    seeded = await post(sim, CHAT, {"messages": QUESTION, "seed": 42})
    text = first["choices"][0]["message"]["content"]
    assert again["choices"][0]["message"]["content"] == text
    assert seeded["choices"][0]["message"]["content"] != text
    assert first["id"] != again["id"]


async def test_chat_stream_sends_role_tokens_finish_usage_done(sim: InProcessSim) -> None:
    whole = await post(sim, CHAT, {"messages": QUESTION})
    body = {"messages": QUESTION, "stream_options": {"include_usage": True}}
    events = await stream(sim, CHAT, body)
    assert events[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert events[-1] == "[DONE]"
    assert events[-2]["choices"] == [] and events[-2]["usage"] == whole["usage"]
    assert events[-3]["choices"][0]["finish_reason"] == "stop"
    tokens = [e["choices"][0]["delta"]["content"] for e in events[1:-3]]
    assert len(tokens) == whole["usage"]["completion_tokens"]
    assert all(len(token.split()) == 1 and token.startswith(" ") for token in tokens)
    assert "".join(tokens) == whole["choices"][0]["message"]["content"]
    assert {e["id"] for e in events[:-1]} == {events[0]["id"]}


async def test_stream_without_include_usage_has_no_usage_chunk(sim: InProcessSim) -> None:
    events = await stream(sim, CHAT, {"messages": QUESTION, "max_tokens": 2})
    assert events[-2]["choices"][0]["finish_reason"] == "length"
    assert all("usage" not in e for e in events[:-1])


async def test_completions_streaming_and_not_agree(sim: InProcessSim) -> None:
    whole = await post(sim, "/v1/completions", {"prompt": "once upon a time", "max_tokens": 5})
    assert whole["object"] == "text_completion" and whole["id"].startswith("cmpl-")
    assert whole["choices"][0]["finish_reason"] == "length"
    assert whole["usage"]["prompt_tokens"] == 4 and whole["usage"]["completion_tokens"] == 5
    events = await stream(sim, "/v1/completions", {"prompt": "once upon a time", "max_tokens": 5})
    assert streamed_text(events) == whole["choices"][0]["text"]
    assert events[-2]["choices"][0]["finish_reason"] == "length"


@pytest.mark.parametrize("k", [0, 1, 7])
@pytest.mark.parametrize("mode", ["echo", "no-echo", "continue_final_message"])
async def test_prefill_continues_the_interrupted_answer(mode: str, k: int) -> None:
    """An answer cut after k tokens and continued with them as prefill ends the same way."""
    async with serve_sim(SimConfig(echo_prefill=mode == "echo")) as sim:
        full = (await post(sim, CHAT, {"messages": QUESTION}))["choices"][0]["message"]["content"]
        tokens = [" " + word for word in full.split()]
        prefill = "".join(tokens[:k])
        extra = {"continue_final_message": True} if mode == "continue_final_message" else {}
        messages = [*QUESTION, {"role": "assistant", "content": prefill}]
        body = {"messages": messages, **extra}
        echo = prefill if mode == "echo" else ""
        resumed = await post(sim, CHAT, body)
        assert resumed["choices"][0]["message"]["content"] == echo + "".join(tokens[k:])
        assert resumed["usage"]["completion_tokens"] == len(tokens) - k
        assert streamed_text(await stream(sim, CHAT, body)) == echo + "".join(tokens[k:])


async def test_completion_continued_from_its_own_prefix_ends_the_same(sim: InProcessSim) -> None:
    full = (await post(sim, "/v1/completions", {"prompt": "hello"}))["choices"][0]["text"]
    cut = len(full) // 2
    cut = full.rindex(" ", 0, cut)
    resumed = await post(sim, "/v1/completions", {"prompt": "hello" + full[:cut]})
    assert resumed["choices"][0]["text"] == full[cut:]


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"{not json", "not valid JSON"),
        (b'{"model": "x"}', "messages"),
        (b'{"messages": [{"role": "user", "content": "x"}], "n": 3}', "n=1"),
    ],
)
async def test_bad_requests_get_openai_errors(
    sim: InProcessSim, body: bytes, fragment: str
) -> None:
    response = await sim.client.post(CHAT, data=body)
    assert response.status == 400
    error = (await response.json())["error"]
    assert fragment in error["message"]
    assert error["type"] == "invalid_request_error" and error["code"] == 400


async def test_prompt_longer_than_context_is_refused() -> None:
    async with serve_sim(SimConfig(context=64)) as sim:
        response = await sim.client.post("/v1/completions", json={"prompt": "w " * 65})
        assert response.status == 400
        assert "context" in (await response.json())["error"]["message"]


async def test_models_props_embeddings_and_metrics(sim: InProcessSim) -> None:
    models = await (await sim.client.get("/v1/models")).json()
    assert [m["id"] for m in models["data"]] == ["tiny"]
    props = await (await sim.client.get("/props")).json()
    assert props["total_slots"] == 4 and props["idle_slots"] == 4
    vectors = await post(sim, "/v1/embeddings", {"input": ["a b", "c"]})
    assert [len(d["embedding"]) for d in vectors["data"]] == [64, 64]
    assert vectors["usage"]["prompt_tokens"] == 3
    await post(sim, CHAT, {"messages": QUESTION, "max_tokens": 3})
    metrics = await (await sim.client.get("/metrics")).text()
    for line in (
        "sim:generation_tokens_total 3.0",
        "sim:prompt_tokens_total 5.0",
        'sim:requests_total{status="200"} 1.0',
        "sim:requests_running 0.0",
        "sim:requests_waiting 0.0",
        "sim:time_to_first_token_seconds_count 1.0",
    ):
        assert line in metrics


async def test_health_is_503_while_loading_then_200() -> None:
    async with serve_sim(faults=Faults(load_time=30)) as sim:
        health = await sim.client.get("/health")
        assert health.status == 503 and await health.json() == {"status": "loading"}
        refused = await sim.client.post("/v1/completions", json={"prompt": "ping"})
        assert refused.status == 503
        assert (await refused.json())["error"]["type"] == "unavailable_error"
        await sim.client.post("/sim/faults", json={"load_time": 0})
        health = await sim.client.get("/health")
        assert health.status == 200 and await health.json() == {"status": "ok"}


async def test_shared_prefix_is_reported_cached_and_skips_prefill() -> None:
    """With --prefill-tps, a request sharing a long prefix waits only for its suffix."""
    async with serve_sim(SimConfig(prefill_tps=2000, output_tokens=1)) as sim:
        prefix = " ".join(f"w{i}" for i in range(200))
        loop = asyncio.get_running_loop()
        started = loop.time()
        first = await post(sim, "/v1/completions", {"prompt": prefix + " first"})
        cold = loop.time() - started
        started = loop.time()
        second = await post(sim, "/v1/completions", {"prompt": prefix + " second"})
        warm = loop.time() - started
        assert first["usage"]["prompt_tokens_details"]["cached_tokens"] == 0
        assert second["usage"]["prompt_tokens_details"]["cached_tokens"] == 192
        assert cold >= 0.1 and warm < cold / 2


async def test_ttft_and_tps_set_the_pace_of_a_stream() -> None:
    """First token after --ttft, then one token every 1/--tps seconds."""
    async with serve_sim(SimConfig(ttft=0.05, tps=100, output_tokens=6)) as sim:
        loop = asyncio.get_running_loop()
        started = loop.time()
        events = await stream(sim, CHAT, {"messages": QUESTION})
        elapsed = loop.time() - started
        assert len(events) == 6 + 3 and 0.1 <= elapsed < 0.5
        metrics = await (await sim.client.get("/metrics")).text()
        ttft = float(metrics.split("sim:time_to_first_token_seconds_sum ")[1].split()[0])
        assert 0.05 <= ttft < 0.1


async def test_requests_beyond_slots_queue_and_show_as_waiting() -> None:
    async with serve_sim(SimConfig(slots=2, tps=200, output_tokens=20)) as sim:
        bodies = [{"messages": [{"role": "user", "content": f"q{i}"}]} for i in range(5)]
        tasks = [asyncio.create_task(post(sim, CHAT, body)) for body in bodies]
        seen: set[tuple[int, int]] = set()
        scraped = ""
        while not all(task.done() for task in tasks):
            seen.add((sim.runtime.running, sim.runtime.waiting))
            if sim.runtime.waiting == 3 and not scraped:
                scraped = await (await sim.client.get("/metrics")).text()
            await asyncio.sleep(0.005)
        await asyncio.gather(*tasks)
        assert (2, 3) in seen and max(running for running, _ in seen) == 2
        assert "sim:requests_waiting 3.0" in scraped and "sim:requests_running 2.0" in scraped
        props = await (await sim.client.get("/props")).json()
        assert props["idle_slots"] == 2 and props["requests_waiting"] == 0


async def wait_for(condition: Any, timeout_s: float = 1.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not condition():
        assert loop.time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.005)


async def first_token(response: ClientResponse) -> None:
    """Read until the first content chunk of a chat stream has arrived."""
    while b'"content":" ' not in await response.content.readline():
        pass


@pytest.mark.parametrize("hang", [False, True])
async def test_client_disconnect_frees_the_slot_at_once(hang: bool) -> None:
    """A client leaving mid-stream (even a stalled one) gives its slot back."""
    faults = Faults(hang_after_tokens=1) if hang else None
    async with serve_sim(SimConfig(slots=1, tps=20, output_tokens=200), faults) as sim:
        response = await sim.client.post(CHAT, json={"messages": QUESTION, "stream": True})
        await first_token(response)
        assert sim.runtime.running == 1
        response.close()
        await wait_for(lambda: sim.runtime.running == 0)
        props = await (await sim.client.get("/props")).json()
        assert props["idle_slots"] == 1
        metrics = await (await sim.client.get("/metrics")).text()
        assert "sim:requests_running 0.0" in metrics
