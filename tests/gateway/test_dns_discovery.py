"""A compose file's gateway finds each service's containers by name, as Docker's DNS
answers it: one replica an address. Tested with a resolver the test controls, and with
the rendered compose file's own gateway command, config and key secret against a real
sim engine run with its own rendered arguments."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from llmfleet.backends.base import ReplicaState
from llmfleet.backends.kubernetes.compose import render_compose
from llmfleet.backends.kubernetes.context import RenderContext
from llmfleet.gateway.discovery import ClusterServices
from llmfleet.gateway.dns_discovery import DnsSource, resolve_addresses
from llmfleet.gateway.replicas import Snapshot
from llmfleet.spec.loading import load_spec_text
from tests.fixtures.processes import stop_process
from tests.gateway.conftest import SimProcess, free_port, service

SPEC = """
name: shop
services:
  chat:
    model: sim:tiny
    engine: {kind: sim, version: "1.2.0"}
    replicas: 2
environments:
  production: {gateway: {port: 8080}}
"""


class Names:
    """A resolver whose answers the test sets; counts the questions."""

    def __init__(self) -> None:
        self.answers: dict[str, list[str]] = {}
        self.asked = 0
        self.waiting: list[tuple[int, asyncio.Future[None]]] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.asked += 1
        for count, future in self.waiting:
            if self.asked >= count and not future.done():
                future.set_result(None)
        if host == "broken":
            raise OSError("resolver unreachable")
        return list(self.answers.get(host, []))

    def after(self, asks: int) -> asyncio.Future[None]:
        """Done once ``asks`` more questions were asked."""
        future = asyncio.get_running_loop().create_future()
        self.waiting.append((self.asked + asks, future))
        return future


def cluster(**hosts: str) -> ClusterServices:
    return ClusterServices(
        environment="production", namespace="", services={name: service() for name in hosts},
        by_kubernetes_name={host: name for name, host in hosts.items()},
        ports=dict.fromkeys(hosts, 8000),
    )  # fmt: skip


class Follow:
    """A source's snapshots, one at a time, as the gateway takes them."""

    def __init__(self, source: DnsSource, names: Names) -> None:
        self.watch = source.watch()
        self.names = names
        self.pending: asyncio.Future[Snapshot] | None = None

    async def next(self, asks: int = 10) -> Snapshot | None:
        """The next snapshot, or None if ``asks`` more resolutions bring none (the
        watch goes on: a cancelled step would end it)."""
        if self.pending is None:
            self.pending = asyncio.ensure_future(anext(self.watch))
        waited = [self.pending, self.names.after(asks)]
        await asyncio.wait(waited, return_when=asyncio.FIRST_COMPLETED)
        if not self.pending.done():
            return None
        snapshot, self.pending = self.pending.result(), None
        return snapshot

    async def close(self) -> None:
        if self.pending is not None:
            self.pending.cancel()
        await self.watch.aclose()


async def test_each_address_is_a_ready_replica_and_only_changes_make_snapshots() -> None:
    names = Names()
    names.answers["chat"] = ["10.0.0.7", "10.0.0.5"]
    source = DnsSource(cluster(chat="chat", embed="broken"), interval_s=0.001, resolve=names)
    follow = Follow(source, names)
    try:
        first = await follow.next()
        assert first is not None
        assert [(r.replica_id, r.url, r.state) for r in first.replicas] == [
            ("chat@10.0.0.5", "http://10.0.0.5:8000", ReplicaState.READY),
            ("chat@10.0.0.7", "http://10.0.0.7:8000", ReplicaState.READY),
        ]  # a failing resolver (embed) is a name with no address, not a stop
        assert await follow.next() is None, "nothing changed"
        names.answers["chat"] = ["10.0.0.5", "fd00::9"]  # a container replaced
        second = await follow.next()
        assert second is not None and second.generation == first.generation + 1
        assert [r.url for r in second.routable("chat")] == [
            "http://10.0.0.5:8000", "http://[fd00::9]:8000"
        ]  # fmt: skip
        names.answers["chat"] = []  # every container gone
        third = await follow.next()
        assert third is not None and third.replicas == []
    finally:
        await follow.close()


async def test_the_system_resolver_answers_a_literal_and_nothing_for_an_unknown_name() -> None:
    assert await resolve_addresses("127.0.0.1", 80) == ["127.0.0.1"]
    assert await resolve_addresses("no-such-host.invalid", 80) == []


def test_a_changed_config_changes_the_compose_gateway_itself() -> None:
    """Compose recreates a container whose definition changed: the config's digest on
    the gateway makes a routing change recreate it, as it rolls a cluster's gateway."""

    def gateway(text: str) -> dict[str, Any]:
        resolved = load_spec_text(text).resolved
        context = RenderContext(fleet=resolved.name, environment=resolved.environment("production"))
        return render_compose(context)["services"]["gateway"]  # type: ignore[no-any-return]

    routed = SPEC.replace("replicas: 2", "replicas: 2\n    routing: {strategy: round-robin}")
    assert gateway(SPEC) == gateway(SPEC)
    assert gateway(SPEC)["labels"] != gateway(routed)["labels"]


def test_the_compose_file_s_gateway_routes_to_its_engines_by_name(
    tmp_path: Path, sims: list[SimProcess], monkeypatch: pytest.MonkeyPatch
) -> None:
    """What docker compose would run, with the names and ports of this machine: the
    engine from its rendered arguments (its key from the variable the file names), the
    gateway from its rendered command, config and key secret. Before, the rendered
    gateway had no way to find an engine and exited at once with a usage error."""
    resolved = load_spec_text(SPEC).resolved
    compose = render_compose(
        RenderContext(fleet=resolved.name, environment=resolved.environment("production"))
    )
    chat, gateway = compose["services"]["chat"], compose["services"]["gateway"]
    port, key = free_port(), "engine-key-0d9f"

    engine_args = [str(a) for a in chat["command"]]
    engine_args[engine_args.index("--port") + 1] = str(port)
    engine_args[engine_args.index("--host") + 1] = "127.0.0.1"
    sim = SimProcess(port=port, args=engine_args[2:])
    variable = chat["environment"]["LLMFLEET_SIM_API_KEY"]
    assert variable.startswith("${LLMFLEET_KEY_CHAT:?"), variable
    monkeypatch.setenv("LLMFLEET_SIM_API_KEY", key)  # what compose sets from the variable
    sims.append(sim.start())

    (mounted,) = gateway["secrets"]
    secret = compose["secrets"][mounted["source"]]
    assert secret == {"environment": "LLMFLEET_KEY_CHAT"}, "the engine's key, never the file's"
    key_file = tmp_path / mounted["source"]
    key_file.write_text(key)
    (config,) = gateway["configs"]
    document = json.loads(compose["configs"][config["source"]]["content"])
    entry = document["services"]["chat"]
    assert entry["endpoints"] == {"service": "chat", "port": 8000}
    assert entry["key_file"] == f"/run/secrets/{mounted['source']}"
    entry["endpoints"] = {"service": "localhost", "port": port}  # this machine's name
    entry["key_file"] = str(key_file)
    config_file = tmp_path / "services.json"
    config_file.write_text(json.dumps(document))

    argv = [sys.executable if a == "python" else str(a) for a in gateway["command"]]
    argv[argv.index(config["target"])] = str(config_file)
    argv[argv.index("--host") + 1] = "127.0.0.1"
    argv[argv.index("--port") + 1] = str(gateway_port := free_port())
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "listening" in line, line + proc.stdout.read()
        body = {"model": "chat", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
        url = f"http://127.0.0.1:{gateway_port}/v1/chat/completions"
        answer = _first_answer(url, body)
        assert answer.status_code == 200, answer.text
        assert answer.json()["choices"][0]["message"]["content"]
    finally:
        stop_process(proc)
        if proc.stdout is not None:
            proc.stdout.close()


def _first_answer(url: str, body: dict[str, Any]) -> httpx.Response:
    """The gateway's answer once it has resolved the name (its first look is at once)."""
    with httpx.Client(timeout=10) as client:
        for _ in range(50):
            answer = client.post(url, json=body)
            if answer.status_code != 503:
                return answer
            time.sleep(0.1)
        return answer
