"""A real llama-server with the real model: started as the local backend would start it."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from llmfleet.engines.environment import engine_environment
from llmfleet.engines.llamacpp import LlamaCppAdapter
from llmfleet.spec.model import ServiceSpec
from tests.fixtures.engines import LLAMACPP_VERSION, QUICKSTART_MODEL, REAL_TIMEOUT_S
from tests.fixtures.processes import stop_process

READY_WITHIN_S = 60.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def running_server(llama_server_bin: Path, smollm_model: Path, tmp_path: Path) -> Iterator[str]:
    service = ServiceSpec.model_validate(
        {
            "model": QUICKSTART_MODEL,
            "engine": {"kind": "llamacpp", "version": LLAMACPP_VERSION},
            "slots": 2,
            "context": 512,
            "resources": {"cpus": 2},
        }
    )
    launch = LlamaCppAdapter().local_command(
        service, executable=llama_server_bin, model_path=smollm_model, served_name="chat"
    )
    port = free_port()
    argv = [part.replace("{port}", str(port)) for part in launch.argv]
    log = (tmp_path / "server.log").open("w")
    proc = subprocess.Popen(  # as the agent starts it: the install's proved setting included
        argv, stdout=log, stderr=subprocess.STDOUT, env=engine_environment(launch.env)
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_process(proc)
        log.close()


def wait_healthy(client: httpx.Client) -> float:
    started = time.monotonic()
    while time.monotonic() - started < READY_WITHIN_S:
        try:
            if client.get("/health").json().get("status") == "ok":
                return time.monotonic() - started
        except (httpx.TransportError, ValueError):
            pass
        time.sleep(0.05)
    raise AssertionError(f"llama-server was not healthy within {READY_WITHIN_S} s")


@pytest.mark.real
@pytest.mark.timeout(REAL_TIMEOUT_S)
def test_real_llama_server_becomes_healthy_and_answers(running_server: str) -> None:
    """Our argv starts the real server: /health ok, one chat completion, metrics exported."""
    with httpx.Client(base_url=running_server, timeout=30) as client:
        took = wait_healthy(client)
        print(f"llama-server healthy after {took:.2f} s")
        reply = client.post(
            "/v1/chat/completions",
            json={
                "model": "chat",
                "messages": [{"role": "user", "content": "Say hello."}],
                "max_tokens": 8,
                "temperature": 0,
            },
        )
        assert reply.status_code == 200, reply.text
        body = reply.json()
        assert body["choices"][0]["message"]["content"].strip()
        assert body["model"] == "chat"  # --alias names the served model
        metrics = client.get("/metrics").text
        assert "llamacpp:prompt_tokens_total" in metrics
        assert "llamacpp:requests_deferred" in metrics
        assert client.get("/props").json()["total_slots"] == 2
