"""The gateway's seams with the rest of llmfleet: the agent's long poll, the
state store's keys, and the process entry point."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from llmfleet.gateway.keys import StoreKeyVerifier
from llmfleet.gateway.replicas import AgentSource
from tests.gateway.conftest import free_port, replica, service, spawn


class FakeAgent:
    """The local agent's environment endpoint, long poll included."""

    def __init__(self, body: dict[str, Any]) -> None:
        self.body = body
        self.changed = asyncio.Event()
        self.polls: list[dict[str, str]] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.polls.append(dict(request.query))
        if int(request.query["wait_generation"]) == self.body["generation"]:
            self.changed.clear()
            try:
                async with asyncio.timeout(float(request.query["timeout"])):
                    await self.changed.wait()
            except TimeoutError:
                pass
        return web.json_response(self.body)

    def publish(self, body: dict[str, Any]) -> None:
        self.body = body
        self.changed.set()


async def test_agent_source_long_polls_over_the_unix_socket(tmp_path: Path, sims) -> None:
    """Snapshots arrive at once, then again only when the generation changes."""
    sim = spawn(sims)
    body = {
        "generation": 1,
        "services": {"chat": service().model_dump(mode="json")},
        "replicas": [replica("chat", sim, 0).to_json()],
        "continuation": {"chat": {"continue_final_message": True}},
    }
    agent = FakeAgent(body)
    app = web.Application()
    app.router.add_get("/v1/environments/{env}", agent.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    socket_path = str(tmp_path / "agent.sock")
    await web.UnixSite(runner, socket_path).start()
    try:
        watch = AgentSource(socket_path, "test", poll_timeout_s=0.2).watch()
        first = await anext(watch)
        assert first.generation == 1 and first.replicas[0].port == sim.port
        assert first.continuation == {"chat": {"continue_final_message": True}}
        nxt = asyncio.create_task(anext(watch))
        await asyncio.sleep(0.5)
        assert not nxt.done()
        agent.publish({**body, "generation": 2, "replicas": []})
        second = await nxt
        assert second.generation == 2 and second.replicas == []
        assert agent.polls[0]["wait_generation"] == "-1"
        await watch.aclose()
    finally:
        await runner.cleanup()


@dataclass
class Record:
    id: int
    name: str
    services: list[str]
    rpm: int | None
    tpm: int | None
    revoked_at: str | None = None


class FakeStore:
    def __init__(self) -> None:
        self.calls = 0
        self.records = {
            "sk-a": Record(1, "a", ["chat"], 10, None),
            "sk-revoked": Record(2, "r", [], None, None, revoked_at="now"),
        }

    def verify_key(self, secret: str) -> Record | None:
        self.calls += 1
        return self.records.get(secret)


async def test_store_verifier_caches_and_drops_revoked_keys() -> None:
    """One store call per secret per ttl; revoked keys are invalid."""
    now = [0.0]
    store = FakeStore()
    verifier = StoreKeyVerifier(store, clock=lambda: now[0], ttl_s=10)
    info = await verifier.verify("sk-a")
    assert info is not None and info.services == frozenset({"chat"}) and info.rpm == 10
    assert await verifier.verify("sk-a") == info
    assert await verifier.verify("sk-revoked") is None
    assert await verifier.verify("sk-nope") is None
    assert store.calls == 3
    now[0] = 11
    await verifier.verify("sk-a")
    assert store.calls == 4


def test_process_refuses_a_taken_port(tmp_path: Path) -> None:
    """A taken port is a clear message and exit code 1."""
    port = free_port()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import socket,time;s=socket.socket();s.bind(('127.0.0.1',{port}));"
            "s.listen();print('up',flush=True);time.sleep(30)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "up"
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "llmfleet.gateway",
                "--environment",
                "e",
                "--port",
                str(port),
                "--agent-socket",
                str(tmp_path / "none.sock"),
            ],
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close() if holder.stdout else None
    assert done.returncode == 1
    assert "already in use" in done.stderr


async def test_process_serves_and_announces_itself(tmp_path: Path) -> None:
    """The process prints its listening line and answers /health (no agent yet: not ready)."""
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "llmfleet.gateway",
        "--environment",
        "e",
        "--port",
        str(port),
        "--agent-socket",
        str(tmp_path / "none.sock"),
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 10)
        assert line.decode().strip() == f"llmfleet gateway listening on http://127.0.0.1:{port}"
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{port}/health") as resp:
                assert resp.status == 200
            async with session.get(f"http://127.0.0.1:{port}/ready") as resp:
                assert resp.status == 503
    finally:
        proc.kill()
        await proc.wait()


def test_the_garbage_collector_leaves_start_up_objects_and_short_lived_ones_alone() -> None:
    """What exists at start-up is frozen out of collections, and the youngest
    generation's threshold is ten times the default (run in a fresh interpreter:
    it changes the process's collector)."""
    code = (
        "import gc; from llmfleet.gateway.__main__ import settle_garbage_collector;"
        "before = gc.get_threshold(); settle_garbage_collector();"
        "print(gc.get_freeze_count() > 1000, gc.get_threshold()[0] == before[0] * 10)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "True"]


async def test_every_answered_request_is_logged_after_a_sigterm(tmp_path: Path, sims) -> None:
    """``llmfleet down`` stops the gateway with SIGTERM: the request lines still in its
    buffer (written once a second) are flushed, one per answered request."""
    import json
    import os
    import signal

    sim = spawn(sims)
    snap = tmp_path / "snapshot.json"
    snap.write_text(json.dumps({
        "generation": 1,
        "services": {"chat": service().model_dump(mode="json")},
        "replicas": [replica("chat", sim, 0).to_json()],
    }))
    port, log_path = free_port(), tmp_path / "gateway.log"
    env = {**os.environ, "LLMFLEET_REQUEST_LOGS": "1"}
    with log_path.open("w") as log:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "llmfleet.gateway", "--environment", "e", "--port",
            str(port), "--static-snapshot", str(snap),
            stdout=asyncio.subprocess.PIPE, stderr=log, env=env,
        )
    try:
        assert proc.stdout is not None
        await asyncio.wait_for(proc.stdout.readline(), 10)
        body = {"model": "chat", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
        async with aiohttp.ClientSession() as session:
            for _ in range(12):
                url = f"http://127.0.0.1:{port}/v1/chat/completions"
                async with session.post(url, json=body) as resp:
                    assert resp.status == 200, await resp.text()
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 10) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    lines = [json.loads(line) for line in log_path.read_text().splitlines() if line.strip()]
    logged = [line for line in lines if line.get("event.dataset") == "llmfleet.requests"]
    assert len(logged) == 12, log_path.read_text()[-2000:]
