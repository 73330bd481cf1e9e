"""The sim as a real process: CLI, listening line, and faults that really kill it."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest

from llmfleet.engines.sim.process import SimProcess, free_port, start_sim

CHAT = "/v1/chat/completions"
BODY = {"messages": [{"role": "user", "content": "hi"}], "stream": True}


@pytest.fixture
def sims() -> Iterator[list[SimProcess]]:
    started: list[SimProcess] = []
    yield started
    for process in started:
        process.stop()


def launch(sims: list[SimProcess], *args: str) -> SimProcess:
    process = start_sim(args)
    sims.append(process)
    return process


def stream_tokens(url: str) -> tuple[list[str], bool]:
    """Content tokens of a streamed chat answer, and whether it ended with [DONE]."""
    tokens: list[str] = []
    try:
        with httpx.stream("POST", url + CHAT, json=BODY, timeout=5) as response:
            for line in response.iter_lines():
                if line == "data: [DONE]":
                    return tokens, True
                if line.startswith("data: "):
                    delta = json.loads(line[6:])["choices"][0]["delta"]
                    tokens += [delta["content"]] if delta.get("content") else []
    except httpx.TransportError:
        pass  # the process died mid-stream: exactly what a crash looks like
    return tokens, False


def test_process_serves_chat_on_its_port(sims: list[SimProcess]) -> None:
    sim = launch(sims, "--model-name", "tiny", "--ttft", "0", "--tps", "0")
    answer = httpx.post(sim.url + CHAT, json={**BODY, "stream": False}).json()
    assert answer["model"] == "tiny" and answer["choices"][0]["message"]["content"]
    tokens, done = stream_tokens(sim.url)
    assert done and "".join(tokens) == answer["choices"][0]["message"]["content"]
    assert httpx.get(sim.url + "/health").json() == {"status": "ok"}


def test_crash_after_tokens_kills_the_process_mid_stream(sims: list[SimProcess]) -> None:
    sim = launch(sims, "--crash-after-tokens", "5", "--output-tokens", "20", "--tps", "0")
    tokens, done = stream_tokens(sim.url)
    assert len(tokens) == 5 and not done
    assert sim.wait(timeout_s=5) == 1
    assert "crash after 5 tokens" in sim.stderr()


def test_crash_set_live_kills_a_running_process(sims: list[SimProcess]) -> None:
    sim = launch(sims, "--ttft", "0", "--tps", "0")
    httpx.post(sim.url + "/sim/faults", json={"crash_after_tokens": 0}).raise_for_status()
    tokens, done = stream_tokens(sim.url)
    assert tokens == [] and not done
    assert sim.wait(timeout_s=5) == 1


def test_load_time_makes_health_503_at_start(sims: list[SimProcess]) -> None:
    sim = launch(sims, "--load-time", "60")
    health = httpx.get(sim.url + "/health")
    assert health.status_code == 503 and health.json() == {"status": "loading"}


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "llmfleet.engines.sim", "--port", str(free_port()), *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=20, check=False)


def test_fail_start_exits_1_with_a_clear_message() -> None:
    result = run_cli("--fail-start")
    assert result.returncode == 1
    assert "--fail-start" in result.stderr and "listening" not in result.stdout


def test_non_loopback_host_needs_allow_remote() -> None:
    result = run_cli("--host", "0.0.0.0")
    assert result.returncode == 1 and "--allow-remote" in result.stderr
