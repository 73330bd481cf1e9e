"""The quickstart fleet with the real llama-server and SmolLM2-135M, end to end.

One fleet per module (starting llama-server twice per test would make the suite
slow); the tests run in file order and each leaves the fleet serving.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from llmfleet.backends.base import ReplicaStatus
from tests.fixtures.fleet import Fleet

pytestmark = pytest.mark.real
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "quickstart.yaml"
STORY = "Write a short story about a brave knight and a dragon."


@pytest.fixture(scope="module")
def quickstart(
    tmp_path_factory: pytest.TempPathFactory, llama_server_bin: Path, smollm_model: Path
) -> Iterator[Fleet]:
    """examples/quickstart.yaml applied on free ports (the real engine and model)."""
    fleet = Fleet(tmp_path_factory.mktemp("quickstart"))
    shutil.copytree(EXAMPLE.parent / "suites", fleet.root / "suites")  # the spec names its suite
    text = EXAMPLE.read_text()
    text = text.replace("port: 8080", "port: GATEWAY_PORT").replace(
        "port: 8081", "port: STAGING_PORT"
    )
    fleet.write(text)
    fleet.run("apply", "--yes", "-m", "quickstart")
    yield fleet
    fleet.down()


def busy_replicas(fleet: Fleet, replicas: list[ReplicaStatus]) -> list[ReplicaStatus]:
    """Replicas whose llama-server reports a request in progress (its /metrics wants the
    key the agent gave it)."""
    busy = []
    for replica in replicas:
        headers = fleet.engine_headers(replica)
        try:
            text = httpx.get(f"{replica.url}/metrics", headers=headers, timeout=2).text
        except httpx.HTTPError:
            continue
        match = re.search(r"^llamacpp:requests_processing (\S+)", text, re.M)
        if match and float(match.group(1)) > 0:
            busy.append(replica)
    return busy


def stream_story(
    fleet: Fleet, *, port: int | None = None, kill_after: int | None = None, max_tokens: int = 150
) -> tuple[str, set[str], dict[str, Any], list[int]]:
    """Stream a chat answer; optionally kill -9 the replica serving it after N chunks."""
    body = {
        "model": "chat",
        "messages": [{"role": "user", "content": STORY}],
        "max_tokens": max_tokens,
        "temperature": 0,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    text, ids, usage, killed = "", set(), {}, []
    url = f"http://127.0.0.1:{port or fleet.gateway_port}/v1/chat/completions"
    chunks = 0
    with httpx.stream("POST", url, json=body, timeout=180) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            ids.add(chunk["id"])
            usage = chunk.get("usage") or usage
            for choice in chunk.get("choices", []):
                piece = (choice.get("delta") or {}).get("content")
                if piece:
                    text += piece
                    chunks += 1
            if kill_after is not None and chunks == kill_after and not killed:
                env = "production" if port is None else "staging"
                for victim in busy_replicas(fleet, fleet.ready(env)):
                    assert victim.pid is not None
                    os.kill(victim.pid, signal.SIGKILL)
                    killed.append(victim.pid)
    return text, ids, usage, killed


def test_quickstart_answers_through_the_gateway(quickstart: Fleet) -> None:
    """`llmfleet ask` streams a real answer from SmolLM2 through the gateway."""
    out = quickstart.run("ask", "chat", "What is the capital of France? Answer in one sentence.")
    assert "Paris" in out.stdout
    assert len(quickstart.ready()) == 2


def test_openai_client_works_unchanged(quickstart: Fleet) -> None:
    """The official openai client, plain and streaming, against the gateway."""
    client = openai.OpenAI(
        base_url=f"http://127.0.0.1:{quickstart.gateway_port}/v1", api_key="none"
    )
    models = [m.id for m in client.models.list()]
    assert "chat" in models
    reply = client.chat.completions.create(
        model="chat",
        messages=[{"role": "user", "content": "Say hello."}],
        max_tokens=16,
        temperature=0,
    )
    assert reply.choices[0].message.content
    assert reply.usage is not None and reply.usage.completion_tokens > 0
    stream = client.chat.completions.create(
        model="chat",
        messages=[{"role": "user", "content": "Say hello."}],
        max_tokens=16,
        temperature=0,
        stream=True,
    )
    streamed = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert streamed == reply.choices[0].message.content
    client.close()


def test_stream_survives_kill_9_of_its_replica(quickstart: Fleet) -> None:
    """kill -9 of the replica serving a stream: same stream, same id, same text, one usage."""
    expected, _, expected_usage, _ = stream_story(quickstart)
    text, ids, usage, killed = stream_story(quickstart, kill_after=25)
    assert len(killed) == 1
    assert text == expected
    assert len(ids) == 1
    assert usage["completion_tokens"] == expected_usage["completion_tokens"]
    assert usage["prompt_tokens"] == expected_usage["prompt_tokens"]
    quickstart.wait_for(lambda: len(quickstart.ready()) == 2, timeout=120, what="restart")
    assert sum(r.restarts for r in quickstart.replicas()) == 1


def test_non_streaming_request_survives_kill_9(quickstart: Fleet) -> None:
    """A non-streaming request whose replica dies mid-generation still gets the full answer."""
    body = {
        "model": "chat",
        "messages": [{"role": "user", "content": STORY}],
        "max_tokens": 150,
        "temperature": 0,
    }
    url = f"http://127.0.0.1:{quickstart.gateway_port}/v1/chat/completions"
    expected = httpx.post(url, json=body, timeout=180).json()["choices"][0]["message"]["content"]
    result: dict[str, Any] = {}
    worker = threading.Thread(
        target=lambda: result.update(httpx.post(url, json=body, timeout=180).json())
    )
    worker.start()
    victims: list[ReplicaStatus] = []
    deadline = time.monotonic() + 30
    while not victims and time.monotonic() < deadline:
        victims = busy_replicas(quickstart, quickstart.ready())
    time.sleep(0.3)  # let it generate some tokens first
    for victim in victims:
        assert victim.pid is not None
        os.kill(victim.pid, signal.SIGKILL)
    worker.join(timeout=180)
    assert victims
    assert result["choices"][0]["message"]["content"] == expected
    quickstart.wait_for(lambda: len(quickstart.ready()) == 2, timeout=120, what="restart")


def test_rolling_replace_under_load_drops_no_request(quickstart: Fleet) -> None:
    """Changing the context replaces both replicas one by one; no client request fails."""
    failures: list[str] = []
    done = threading.Event()
    count = [0]

    def load() -> None:
        with httpx.Client(timeout=120) as client:
            while not done.is_set():
                response = client.post(
                    f"http://127.0.0.1:{quickstart.gateway_port}/v1/chat/completions",
                    json={
                        "model": "chat",
                        "messages": [{"role": "user", "content": "Hi!"}],
                        "max_tokens": 8,
                        "temperature": 0,
                    },
                )
                count[0] += 1
                if response.status_code != 200:
                    failures.append(f"{response.status_code} {response.text[:200]}")

    before = {r.replica_id for r in quickstart.ready()}
    quickstart.write(quickstart.spec.read_text().replace("context: 4096", "context: 2048"))
    workers = [threading.Thread(target=load) for _ in range(3)]
    for worker in workers:
        worker.start()
    try:
        out = quickstart.run("apply", "--yes").stdout
    finally:
        done.set()
        for worker in workers:
            worker.join()
    assert out.count("-/+ chat[") >= 2
    assert failures == []
    assert count[0] > 0
    after = quickstart.ready()
    assert len(after) == 2 and {r.replica_id for r in after}.isdisjoint(before)


def test_one_replica_service_waits_for_the_restart(quickstart: Fleet) -> None:
    """Staging has 1 replica: killed mid-stream, the gateway waits for it to come back."""
    quickstart.run("apply", "--yes", "--env", "staging")
    port = quickstart.staging_port
    expected, _, _, _ = stream_story(quickstart, port=port, max_tokens=80)
    text, ids, _, killed = stream_story(quickstart, port=port, kill_after=20, max_tokens=80)
    assert len(killed) == 1
    assert text == expected and len(ids) == 1
    quickstart.run("destroy", "--yes", "--env", "staging")


def test_destroy_stops_the_fleet(quickstart: Fleet) -> None:
    """destroy leaves nothing running and is recorded."""
    quickstart.run("destroy", "--yes")
    assert quickstart.replicas() == []
    history = quickstart.run("history").stdout
    assert "destroy" in history and "apply" in history
