"""A sim engine given an API key in its environment guards its port as llama-server does.

With ``LLMFLEET_SIM_API_KEY`` set, every path but the health check answers 401
(OpenAI-style body) unless the request carries
``Authorization: Bearer KEY``: generation, embeddings, metrics, props and the
fault switches alike, so another local user can neither use nor break a
replica behind the gateway's back. Without the variable the sim stays open
(the benches and most tests start it that way).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from llmfleet.engines.sim.process import SimProcess, start_sim

KEY_ENV = "LLMFLEET_SIM_API_KEY"
CHAT = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
GUARDED: list[tuple[str, str, dict[str, Any] | None]] = [
    ("POST", "/v1/chat/completions", CHAT),
    ("POST", "/v1/completions", {"prompt": "hi", "max_tokens": 2}),
    ("POST", "/v1/embeddings", {"input": "hi"}),
    ("GET", "/v1/models", None),
    ("GET", "/metrics", None),
    ("GET", "/props", None),
    ("GET", "/sim/faults", None),
    ("POST", "/sim/faults", {"error_rate": 0.0}),
]
OPEN = ("/health",)
"""llama-server leaves only its health checks open."""


@pytest.fixture(scope="module")
def key() -> str:
    return secrets.token_urlsafe(32)


@pytest.fixture(scope="module")
def keyed_sim(key: str) -> Iterator[SimProcess]:
    """One sim process started with the key in its environment (never in argv)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(KEY_ENV, key)
        sim = start_sim(["--ttft", "0", "--tps", "0"])
    try:
        yield sim
    finally:
        sim.stop()


def call(sim: SimProcess, method: str, path: str, body: Any, **headers: str) -> httpx.Response:
    return httpx.request(method, sim.url + path, json=body, headers=headers, timeout=10)


@pytest.mark.parametrize(("method", "path", "body"), GUARDED, ids=[p for _, p, _ in GUARDED])
def test_a_missing_or_wrong_key_is_refused_with_401(
    keyed_sim: SimProcess, key: str, method: str, path: str, body: Any
) -> None:
    """No key, a wrong key and the key without its scheme's token all get llama-server's 401."""
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {key}"}):
        answer = call(keyed_sim, method, path, body, **headers)
        assert answer.status_code == 401, (path, headers, answer.text)
        error = answer.json()["error"]
        assert error["type"] == "authentication_error" and error["code"] == 401
        assert key not in answer.text


@pytest.mark.parametrize(("method", "path", "body"), GUARDED, ids=[p for _, p, _ in GUARDED])
def test_the_key_opens_every_path(
    keyed_sim: SimProcess, key: str, method: str, path: str, body: Any
) -> None:
    answer = call(keyed_sim, method, path, body, Authorization=f"Bearer {key}")
    assert answer.status_code == 200, answer.text


@pytest.mark.parametrize("path", OPEN)
def test_the_health_check_stays_open(keyed_sim: SimProcess, path: str) -> None:
    assert httpx.get(keyed_sim.url + path, timeout=10).status_code == 200


def test_a_refused_fault_change_changes_nothing(keyed_sim: SimProcess, key: str) -> None:
    """POST /sim/faults without the key leaves the faults as they were."""
    refused = call(keyed_sim, "POST", "/sim/faults", {"error_rate": 1.0})
    assert refused.status_code == 401
    faults = call(keyed_sim, "GET", "/sim/faults", None, Authorization=f"Bearer {key}").json()
    assert faults["error_rate"] == 0.0


def test_the_key_is_not_in_the_process_argv(keyed_sim: SimProcess, key: str) -> None:
    """Anyone may read /proc/PID/cmdline; only the owner reads /proc/PID/environ."""
    pid = keyed_sim.popen.pid
    with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
        assert key.encode() not in cmdline.read()
    with open(f"/proc/{pid}/environ", "rb") as environ:
        assert f"{KEY_ENV}={key}".encode() in environ.read().split(b"\0")
