"""Each replica the local backend starts has an API key only the agent and the gateway know.

Real CLI, agent, gateway and sim processes. The key is made by the agent when it
starts the replica, handed to the engine in its environment, kept in the agent's
0600 table so an agent restarted later can still talk to the replicas it adopts,
and sent by everything that calls the engine (gateway, probes, metrics scrape).
It is never in argv, the state store, the logs or ``llmfleet status``.
"""

from __future__ import annotations

import json
import os
import signal
import stat
from pathlib import Path

import httpx

from llmfleet.backends.base import ReplicaStatus
from tests.fixtures.fleet import Fleet

KEY_ENV = "LLMFLEET_SIM_API_KEY"
SPEC = """
services:
  chat:
    model: sim:tiny
    engine: {kind: sim, version: "1.2.0", args: ["--ttft", "0", "--tps", "0"]}
    replicas: REPLICAS
environments:
  production:
    gateway: {port: GATEWAY_PORT}
"""
CHAT = {"model": "chat", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}


def engine_key(replica: ReplicaStatus) -> str:
    """The key the replica's process was given, read from its environment (we own it)."""
    assert replica.pid is not None
    environ = Path(f"/proc/{replica.pid}/environ").read_bytes().split(b"\0")
    found = [v for k, _, v in (e.partition(b"=") for e in environ) if k == KEY_ENV.encode()]
    assert found, f"{KEY_ENV} is not in the environment of replica {replica.replica_id}"
    return found[0].decode()


def direct(replica: ReplicaStatus, path: str, **headers: str) -> httpx.Response:
    return httpx.post(f"{replica.url}{path}", json=CHAT, headers=headers, timeout=30)


def agent_metrics(fleet: Fleet) -> str:
    """The agent's fleet metrics over its unix socket (what Prometheus sees through it)."""
    transport = httpx.HTTPTransport(uds=str(fleet.home / "agent.sock"))
    with httpx.Client(transport=transport, base_url="http://agent", timeout=30) as client:
        return client.get("/v1/metrics").text


def test_a_replica_answers_only_the_gateway_and_the_key_leaks_nowhere(fleet: Fleet) -> None:
    """Direct calls without the key or with a wrong one get 401; the gateway gets 200; the
    key is in no argv, no file of the project but the agent's 0600 table, no status or log."""
    fleet.write(SPEC.replace("REPLICAS", "2"))
    fleet.run("apply", "--yes")
    replicas = fleet.ready()
    keys = {r.replica_id: engine_key(r) for r in replicas}
    assert len(set(keys.values())) == 2  # one key per replica
    for replica in replicas:
        key = keys[replica.replica_id]
        assert direct(replica, "/v1/chat/completions").status_code == 401
        wrong = direct(replica, "/v1/chat/completions", Authorization="Bearer not-the-key")
        assert wrong.status_code == 401
        right = direct(replica, "/v1/chat/completions", Authorization="Bearer " + key)
        assert right.status_code == 200
        assert replica.pid is not None
        assert key.encode() not in Path(f"/proc/{replica.pid}/cmdline").read_bytes()
    for _ in range(4):
        assert fleet.chat("hello", max_tokens=2)["usage"]["completion_tokens"] == 2
    # the agent's scrape sent the keys: the engines' own series are there (the endpoint
    # serves a scrape up to 1 s old, which may predate the replicas)
    fleet.wait_for(
        lambda: agent_metrics(fleet).count("llmfleet_generation_tokens_total{") >= 2,
        timeout=10,
        what="both engines' series in the agent's metrics",
    )
    shown = fleet.run("status").stdout  # its log tails too; the log files are scanned below
    table = fleet.home / "agent-state.json"
    assert stat.S_IMODE(table.stat().st_mode) == 0o600
    for key in keys.values():
        assert key not in shown
        assert key in table.read_text()
        holders = [p for p in fleet.root.rglob("*") if p.is_file() and key.encode() in _bytes(p)]
        assert holders == [table], holders


def _bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:  # the agent's socket and the like
        return b""


def test_an_agent_restarted_keeps_talking_to_the_replicas_it_adopts(fleet: Fleet) -> None:
    """A new agent reads each replica's key from its table: the adopted replica passes its
    probes (they carry the key), and the gateway keeps answering."""
    fleet.write(SPEC.replace("REPLICAS", "1"))
    fleet.run("apply", "--yes")
    before = fleet.ready()[0]
    key = engine_key(before)
    agent_pid = int(fleet.backend._call("GET", "/v1/agent")["pid"])
    os.kill(agent_pid, signal.SIGKILL)
    fleet.wait_for(lambda: not Path(f"/proc/{agent_pid}").exists(), what="agent to die")
    fleet.backend.ensure_agent()
    fleet.wait_for(lambda: len(fleet.ready()) == 1, timeout=20, what="adopted replica ready")
    after = fleet.ready()[0]
    assert (after.pid, after.restarts) == (before.pid, 0)
    assert (
        json.loads((fleet.home / "agent-state.json").read_text())["replicas"][0]["api_key"] == key
    )
    assert fleet.chat("hello", max_tokens=2)["usage"]["completion_tokens"] == 2


def test_a_replica_restarted_after_a_crash_gets_its_key_again(fleet: Fleet) -> None:
    """kill -9 of a replica: the new process has the same key and the gateway still reaches it."""
    fleet.write(SPEC.replace("REPLICAS", "1"))
    fleet.run("apply", "--yes")
    victim = fleet.ready()[0]
    key = engine_key(victim)
    assert victim.pid is not None
    os.kill(victim.pid, signal.SIGKILL)
    fleet.wait_for(
        lambda: any(r.restarts == 1 and r.state == "ready" for r in fleet.replicas()),
        what="restart",
    )
    assert engine_key(fleet.ready()[0]) == key
    assert fleet.chat("hello", max_tokens=2)["usage"]["completion_tokens"] == 2
