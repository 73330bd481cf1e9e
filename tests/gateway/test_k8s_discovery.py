"""The gateway in a cluster finds replicas by watching EndpointSlices: tested with the
fake API server's real watch streams and real sim engines as the pods."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from llmfleet.backends.base import ReplicaState
from llmfleet.backends.kubernetes.gateway import gateway_objects
from llmfleet.gateway.app import create_app
from llmfleet.gateway.discovery import (
    ApiServer,
    ClusterServices,
    EndpointSliceSource,
    endpoint_state,
    load_cluster_services,
)
from llmfleet.gateway.replicas import Snapshot
from tests.backends.kubernetes.cases import context
from tests.backends.kubernetes.fake_api import FakeApiServer
from tests.gateway.conftest import FAST_CONFIG, SimProcess, service, spawn

NS = "fleet-test"


class Tap:
    """A source in front of another that lets a test wait for a snapshot it wants."""

    def __init__(self, inner: EndpointSliceSource) -> None:
        self.inner = inner
        self.latest: Snapshot | None = None
        self.changed = asyncio.Condition()

    async def watch(self) -> AsyncIterator[Snapshot]:
        async for snapshot in self.inner.watch():
            yield snapshot  # the gateway has it once we get control back
            async with self.changed:
                self.latest = snapshot
                self.changed.notify_all()

    async def until(self, check: Callable[[Snapshot], bool]) -> Snapshot:
        async with asyncio.timeout(5), self.changed:
            await self.changed.wait_for(lambda: self.latest is not None and check(self.latest))
        assert self.latest is not None
        return self.latest


def states(snapshot: Snapshot) -> dict[str, ReplicaState]:
    return {r.replica_id: r.state for r in snapshot.replicas}


def endpoint_slice(name: str, pods: dict[str, SimProcess], **conditions: bool) -> dict[str, Any]:
    """One slice of Service chat: every pod at 127.0.0.1 on its sim's port (one port a
    slice, so one sim a slice, as a cluster splits slices by port)."""
    (port,) = {sim.port for sim in pods.values()}
    return {
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
        "metadata": {"name": name, "namespace": NS,
                     "labels": {"kubernetes.io/service-name": "chat"}},
        "ports": [{"name": "http", "port": port, "protocol": "TCP"}],
        "endpoints": [{"addresses": ["127.0.0.1"], "targetRef": {"kind": "Pod", "name": pod},
                       "conditions": {"ready": True, "serving": True, "terminating": False,
                                      **conditions}}
                      for pod in pods],
    }  # fmt: skip


@pytest.fixture
def fake_api() -> Iterator[FakeApiServer]:
    with FakeApiServer() as server:
        yield server


@pytest.fixture
async def gateway(fake_api: FakeApiServer) -> AsyncIterator[tuple[Any, Tap]]:
    cluster = ClusterServices(
        environment="test", namespace=NS, services={"chat": service()},
        by_kubernetes_name={"chat": "chat"}, ports={"chat": 8080},
    )  # fmt: skip
    tap = Tap(EndpointSliceSource(cluster, ApiServer(fake_api.url), retry_s=0.05))
    app = create_app(tap, config=FAST_CONFIG)
    await app.serve(host="127.0.0.1", port=0)
    try:
        yield app, tap
    finally:
        await app.close(grace_s=1.0)


async def ask(app: Any, n: int = 1) -> list[int]:
    body = {"model": "chat", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
    url = f"http://127.0.0.1:{app.port}/v1/chat/completions"
    async with aiohttp.ClientSession() as session:

        async def one() -> int:
            async with session.post(url, json=body) as resp:
                await resp.read()
                return resp.status

        return list(await asyncio.gather(*(one() for _ in range(n))))


async def answered(sim: SimProcess) -> int:
    async with aiohttp.ClientSession() as session, session.get(sim.url + "/metrics") as resp:
        text = await resp.text()
    found = re.search(r'^sim:requests_total\{status="200"\} ([0-9.]+)', text, re.M)
    return int(float(found[1])) if found else 0


async def test_ready_endpoints_are_routed_as_they_appear(
    fake_api: FakeApiServer, gateway: tuple[Any, Tap], sims: list[SimProcess]
) -> None:
    app, tap = gateway
    first = await tap.until(lambda s: s.generation >= 1)
    assert first.replicas == []
    sim = spawn(sims)
    fake_api.put(endpoint_slice("chat-a", {"chat-a-1": sim}))
    seen = await tap.until(lambda s: bool(s.routable("chat")))
    assert seen.routable("chat")[0].url == sim.url
    assert await ask(app, 4) == [200] * 4
    assert await answered(sim) == 4


async def test_a_terminating_endpoint_gets_no_new_requests(
    fake_api: FakeApiServer, gateway: tuple[Any, Tap], sims: list[SimProcess]
) -> None:
    app, tap = gateway
    stays, leaves = spawn(sims), spawn(sims)
    fake_api.put(endpoint_slice("chat-a", {"chat-a-1": stays}))
    fake_api.put(endpoint_slice("chat-b", {"chat-b-1": leaves}))
    await tap.until(lambda s: len(s.routable("chat")) == 2)
    fake_api.put(endpoint_slice("chat-b", {"chat-b-1": leaves}, ready=False, terminating=True))
    seen = await tap.until(lambda s: states(s).get("chat-b-1") == ReplicaState.DRAINING)
    assert [r.replica_id for r in seen.routable("chat")] == ["chat-a-1"]
    before = await answered(leaves)
    assert await ask(app, 12) == [200] * 12
    assert await answered(leaves) == before
    fake_api.delete("EndpointSlice", NS, "chat-b")
    gone = await tap.until(lambda s: "chat-b-1" not in states(s))
    assert list(states(gone)) == ["chat-a-1"]


async def test_the_watch_resumes_from_its_version_and_lists_again_after_410(
    fake_api: FakeApiServer, gateway: tuple[Any, Tap], sims: list[SimProcess]
) -> None:
    _app, tap = gateway
    sim = spawn(sims)
    await tap.until(lambda s: s.generation >= 1)
    assert await asyncio.to_thread(fake_api.watching.wait, 5)
    fake_api.drop_watches()  # an API server restart: the stream ends
    fake_api.put(endpoint_slice("chat-a", {"chat-a-1": sim}))
    await tap.until(lambda s: "chat-a-1" in states(s))
    watches = [p for m, p in fake_api.requests if "watch=true" in p]
    assert len(watches) >= 2 and "resourceVersion=1" in watches[-1]  # not from scratch
    lists = sum(1 for m, p in fake_api.requests if "watch=true" not in p)
    fake_api.compact()  # the version it holds is compacted away ...
    fake_api.drop_watches()  # ... and the stream ends: watching again gets 410
    fake_api.put(endpoint_slice("chat-b", {"chat-b-1": sim}))
    fake_api.delete("EndpointSlice", NS, "chat-a")
    relisted = await tap.until(lambda s: set(states(s)) == {"chat-b-1"})
    assert sum(1 for m, p in fake_api.requests if "watch=true" not in p) > lists
    assert relisted.routable("chat")[0].replica_id == "chat-b-1"


@pytest.mark.parametrize(
    ("conditions", "state"),
    [
        ({"ready": True, "serving": True, "terminating": False}, ReplicaState.READY),
        ({}, ReplicaState.READY),  # the API: ready left out means ready
        ({"ready": False, "serving": False}, ReplicaState.STARTING),
        ({"ready": False, "serving": True, "terminating": True}, ReplicaState.DRAINING),
    ],
)
def test_endpoint_conditions_as_replica_states(conditions: dict[str, bool], state: str) -> None:
    assert endpoint_state(conditions) == state


def test_the_rendered_config_map_is_what_the_gateway_reads(tmp_path: Path) -> None:
    ctx = context("init", "production")
    ports = {"chat": 8080, "chat-long": 8081, "echo": 8082}
    config_map = next(o for o in gateway_objects(ctx, ports) if o["kind"] == "ConfigMap")
    path = tmp_path / "services.json"
    path.write_text(config_map["data"]["services.json"])
    cluster = load_cluster_services(path)
    assert cluster.namespace == ctx.namespace
    assert cluster.services == dict(ctx.environment.services)
    assert cluster.by_kubernetes_name["chat-long"] == "chat-long"
    assert cluster.key_files["chat"] == "/etc/llmfleet/engine-keys/chat"
    assert json.loads(config_map["data"]["services.json"])["environment"] == "production"
