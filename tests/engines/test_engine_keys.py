"""Each engine names the variable it reads an API key from, and mirrors the real ones.

The local backend gives every replica a key of its own under that variable (in
the environment: argv is readable by any local user). The names are the
engines' own: llama.cpp's ``common/arg.cpp`` registers ``--api-key`` with
``set_env("LLAMA_API_KEY")``; vLLM reads ``VLLM_API_KEY`` when ``--api-key`` is
not given. The real llama-server is checked against the sim's rules: the same
paths open, the same paths shut, the same 401 body.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from llmfleet.engines.llamacpp import LlamaCppAdapter
from llmfleet.engines.sim.adapter import SimAdapter
from llmfleet.engines.sim.process import start_sim
from llmfleet.engines.vllm import VllmAdapter
from llmfleet.spec.model import ServiceSpec
from tests.fixtures.engines import LLAMACPP_VERSION, QUICKSTART_MODEL, REAL_TIMEOUT_S
from tests.fixtures.processes import stop_process

ADAPTERS: list[tuple[Any, str, str]] = [
    (LlamaCppAdapter(), "llamacpp", "LLAMA_API_KEY"),
    (VllmAdapter(), "vllm", "VLLM_API_KEY"),
    (SimAdapter(), "sim", "LLMFLEET_SIM_API_KEY"),
]
VERSIONS = {"llamacpp": LLAMACPP_VERSION, "vllm": "0.11.0", "sim": "1.2.0"}
CHAT = {"model": "chat", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}
RULES: list[tuple[str, str, bool]] = [
    ("GET", "/health", False),
    ("GET", "/v1/models", True),
    ("GET", "/metrics", True),
    ("GET", "/props", True),
    ("POST", "/v1/chat/completions", True),
]
"""(method, path, wants the key), as the real llama-server 11434.0.0 answers (the
test below holds it to this table): only its health check is open."""


def service(kind: str) -> ServiceSpec:
    return ServiceSpec.model_validate(
        {
            "model": QUICKSTART_MODEL if kind != "sim" else "sim:tiny",
            "engine": {"kind": kind, "version": VERSIONS[kind]},
            "slots": 2,
            "context": 512,
            "resources": {"cpus": 2},
        }
    )


@pytest.mark.parametrize(("adapter", "kind", "variable"), ADAPTERS, ids=[a[1] for a in ADAPTERS])
def test_each_engine_names_its_key_variable_and_never_a_key_flag(
    adapter: Any, kind: str, variable: str
) -> None:
    launch = adapter.local_command(
        service(kind),
        executable=Path("/x/bin/engine"),
        model_path=Path("/m.gguf"),
        served_name="chat",
    )
    assert launch.api_key_env == variable
    assert not any(arg.startswith("--api-key") for arg in launch.argv)
    assert variable not in launch.env  # the backend sets it, per replica, at start


def check_rules(base: str, key: str) -> None:
    """Without the key: 401 on guarded paths, an answer on open ones; with it: 200."""
    with httpx.Client(base_url=base, timeout=60) as client:
        for method, path, guarded in RULES:
            body = CHAT if method == "POST" else None
            bare = client.request(method, path, json=body)
            wrong = client.request(method, path, json=body, headers={"Authorization": "Bearer x"})
            right = client.request(
                method, path, json=body, headers={"Authorization": f"Bearer {key}"}
            )
            if guarded:
                assert (bare.status_code, wrong.status_code) == (401, 401), path
                assert bare.json()["error"]["type"] == "authentication_error"
            else:
                assert bare.status_code == 200, (path, bare.text)
            assert right.status_code == 200, (path, right.text)


def test_the_sim_follows_llama_servers_rules() -> None:
    key = secrets.token_urlsafe(32)
    sim = start_sim(["--model-name", "chat", "--ttft", "0", "--tps", "0"], api_key=key)
    try:
        check_rules(sim.url, key)
    finally:
        sim.stop()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def keyed_llama_server(
    llama_server_bin: Path, smollm_model: Path, tmp_path: Path
) -> Iterator[tuple[str, str, int]]:
    """The real llama-server started as the local backend starts it, the key in its env."""
    launch = LlamaCppAdapter().local_command(
        service("llamacpp"),
        executable=llama_server_bin,
        model_path=smollm_model,
        served_name="chat",
    )
    assert launch.api_key_env is not None
    key = secrets.token_urlsafe(32)
    port = free_port()
    argv = [part.replace("{port}", str(port)) for part in launch.argv]
    env = {**os.environ, **launch.env, launch.api_key_env: key}
    with (tmp_path / "server.log").open("w") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env)
        try:
            yield f"http://127.0.0.1:{port}", key, proc.pid
        finally:
            stop_process(proc)


@pytest.mark.real
@pytest.mark.timeout(REAL_TIMEOUT_S)
def test_the_real_llama_server_reads_its_key_from_the_environment(
    keyed_llama_server: tuple[str, str, int],
) -> None:
    """LLAMA_API_KEY guards llama-server's port exactly as the sim guards its own."""
    base, key, pid = keyed_llama_server
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(base + "/health", timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    check_rules(base, key)
    assert key.encode() not in Path(f"/proc/{pid}/cmdline").read_bytes()
