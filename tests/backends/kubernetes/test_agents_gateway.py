"""An agent on a cluster, reached through the real gateway as the cluster runs it: the
gateway reads the rendered ConfigMap, follows the EndpointSlices of the fake API server
(real watch streams), checks keys in the state store; the agent is a real process
(``agent_serve`` with the test agent) given the key apply put in its Secret, the
models are real sim engines. A client names the agent as its model; the agent calls its
model through the gateway with its key, and a model outside the key's scope is refused."""

from __future__ import annotations

import asyncio
import base64
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from llmfleet.backends.kubernetes.client import connect
from llmfleet.backends.kubernetes.context import RenderContext
from llmfleet.backends.kubernetes.keys import make_agent_secrets
from llmfleet.backends.kubernetes.render import agent_secrets, render_environment
from llmfleet.gateway.app import create_app
from llmfleet.gateway.discovery import ApiServer, EndpointSliceSource, load_cluster_services
from llmfleet.gateway.keys import StoreKeyVerifier
from llmfleet.spec.loading import load_spec_text
from llmfleet.state.store import StateStore
from tests.backends.kubernetes.fake_api import FakeApiServer
from tests.fixtures.fleet import free_port
from tests.fixtures.processes import stop_process
from tests.gateway.conftest import FAST_CONFIG, SimProcess, spawn

ROOT = Path(__file__).resolve().parents[3]
NS = "rag-prod"
SPEC = """
name: rag
services:
  chat: {model: sim:tiny, engine: {kind: sim, version: "1.2.0"}}
  embed: {model: sim:embed, engine: {kind: sim, version: "1.2.0"}}
agents:
  helper:
    image: registry.example.com/helper:1.0
    entrypoint: tests.agents.docs_agent:app
    models: [chat]
    env: {AGENT_MODEL: chat}
    health_path: /healthz
environments:
  production:
    backend: {kind: kubernetes, namespace: rag-prod, state_secret: llmfleet-state}
"""


def endpoint_slice(service: str, port: int, pod: str) -> dict[str, Any]:
    return {
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
        "metadata": {"name": f"{service}-a", "namespace": NS,
                     "labels": {"kubernetes.io/service-name": service}},
        "ports": [{"name": "http", "port": port, "protocol": "TCP"}],
        "endpoints": [{"addresses": ["127.0.0.1"], "targetRef": {"kind": "Pod", "name": pod},
                       "conditions": {"ready": True, "serving": True, "terminating": False}}],
    }  # fmt: skip


@pytest.fixture
def sims() -> Iterator[list[SimProcess]]:
    started: list[SimProcess] = []
    try:
        yield started
    finally:
        for sim in started:
            sim.stop()


@pytest.fixture
async def cluster_gateway(
    tmp_path: Path, fake_api: FakeApiServer
) -> AsyncIterator[tuple[Any, RenderContext, StateStore]]:
    """The rendered environment's gateway, in this process, on a real port."""
    resolved = load_spec_text(SPEC).resolved
    ctx = RenderContext(fleet=resolved.name, environment=resolved.environment("production"))
    (config_map,) = [o for o in render_environment(ctx) if o["kind"] == "ConfigMap"]
    (tmp_path / "services.json").write_text(config_map["data"]["services.json"])
    cluster = load_cluster_services(tmp_path / "services.json")
    store = StateStore.open(f"sqlite:///{tmp_path / 'state.db'}", base_dir=tmp_path)
    loop = asyncio.get_running_loop()
    source = EndpointSliceSource(cluster, ApiServer(fake_api.url), retry_s=0.05)
    verifier = StoreKeyVerifier(store, clock=loop.time)
    app = create_app(source, key_verifier=verifier, config=FAST_CONFIG)
    await app.serve(host="127.0.0.1", port=0)
    try:
        yield app, ctx, store
    finally:
        await app.close(grace_s=1.0)
        store.close()


def start_agent(port: int, env: dict[str, str]) -> subprocess.Popen[str]:
    argv = [sys.executable, "-m", "llmfleet.engines.agent_serve", "--app",
            "tests.agents.docs_agent:app", "--host", "127.0.0.1", "--port", str(port)]  # fmt: skip
    full = {**os.environ, **env, "PYTHONPATH": str(ROOT)}  # where the test agent is
    return subprocess.Popen(argv, env=full, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def pod_env(ctx: RenderContext, fake_api: FakeApiServer) -> dict[str, str]:
    """The agent container's environment as the kubelet makes it: the rendered values,
    and each secretKeyRef read from the Secret in the (fake) cluster."""
    objects = render_environment(ctx)
    (deployment,) = [
        o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"] == "helper"
    ]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    env = {}
    for variable in container["env"]:
        if "value" in variable:
            env[variable["name"]] = variable["value"]
            continue
        ref = variable["valueFrom"]["secretKeyRef"]
        secret = fake_api.get("Secret", NS, ref["name"])
        assert secret is not None, ref
        env[variable["name"]] = base64.b64decode(secret["data"][ref["key"]]).decode()
    env["HOME"] = str(Path.home())  # the pod's is its own emptyDir
    return env


async def until_healthy(port: int) -> None:
    """The agent answers its health path (a pod's readiness probe would say so)."""
    deadline = asyncio.get_running_loop().time() + 15
    async with aiohttp.ClientSession() as session:
        while asyncio.get_running_loop().time() < deadline:
            try:
                async with session.get(f"http://127.0.0.1:{port}/healthz") as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)
    raise AssertionError("the agent never answered its health path")


async def ask(port: int, model: str, question: str) -> tuple[int, str]:
    body = {"model": model, "messages": [{"role": "user", "content": question}]}
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    async with aiohttp.ClientSession() as session, session.post(url, json=body) as resp:
        answer = await resp.json()
    if resp.status != 200:
        return resp.status, str(answer)
    return resp.status, str(answer["choices"][0]["message"]["content"])


async def until_answered(port: int, model: str, question: str) -> tuple[int, str]:
    """The first 200 within a few seconds (the slices and the agent take a moment)."""
    deadline = asyncio.get_running_loop().time() + 15
    while True:
        status, text = await ask(port, model, question)
        if status == 200 or asyncio.get_running_loop().time() > deadline:
            return status, text
        await asyncio.sleep(0.1)


async def test_a_client_reaches_the_agent_by_name_and_its_key_reaches_only_its_models(
    fake_api: FakeApiServer,
    cluster_gateway: tuple[Any, RenderContext, StateStore],
    sims: list[SimProcess],
) -> None:
    app, ctx, store = cluster_gateway
    client = connect(ctx.environment.backend, namespace=NS, server=fake_api.url)
    try:
        agents = {n: s.agent for n, s in ctx.environment.services.items() if s.agent is not None}
        make_agent_secrets(client, store, ctx.owner, NS, agents, lambda line: None, {})
    finally:
        client.close()
    (secret,) = agent_secrets(ctx)
    stored = fake_api.get("Secret", NS, secret)
    assert stored is not None
    key = base64.b64decode(stored["data"]["OPENAI_API_KEY"]).decode()

    chat, embed = spawn(sims, model="chat"), spawn(sims, model="embed")
    port = free_port()
    env = pod_env(ctx, fake_api)
    assert env["OPENAI_API_KEY"] == key
    assert env["OPENAI_BASE_URL"] == f"http://llmfleet-gateway.{NS}.svc:8080/v1"
    # the Service's cluster address does not resolve here: the gateway is on this machine
    agent = start_agent(port, {**env, "OPENAI_BASE_URL": f"http://127.0.0.1:{app.port}/v1"})
    try:
        for service, at, pod in (("chat", chat.port, "chat-1"), ("embed", embed.port, "embed-1"),
                                 ("helper", port, "helper-1")):  # fmt: skip
            fake_api.put(endpoint_slice(service, at, pod))
        await until_healthy(port)
        status, answer = await until_answered(app.port, "helper", "hello")
        assert status == 200, answer
        assert answer.startswith("[docs-assistant] ") and len(answer) > len("[docs-assistant] ")
        status, answer = await ask(app.port, "helper", "use:embed hello")
        assert (status, answer) == (200, "refused 403"), "its key may not call embed"
        status, answer = await ask(app.port, "embed", "hello")
        assert status == 200, "embed itself answers a client that sends no key"
    finally:
        stop_process(agent)
