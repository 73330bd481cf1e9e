"""An agent run by a real local fleet: the sim engine as its model, a real ASGI agent
(``tests/agents/docs_agent.py``) served by uvicorn, calling the gateway with the
``openai`` client on the key llmfleet made for it."""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import sqlite3
from pathlib import Path

import httpx
import openai

from tests.fixtures.fleet import Fleet

REPO = Path(__file__).resolve().parents[2]
SPEC = f"""
services:
  chat:
    model: sim:tiny
    engine: {{kind: sim, version: "1.2.0"}}
  other:
    model: sim:other
    engine: {{kind: sim, version: "1.2.0"}}
indexes:
  docs: {{embedding: chat, dimension: 8}}
agents:
  docs-assistant:
    entrypoint: tests.agents.docs_agent:app
    python_path: ["{REPO}"]
    models: [chat]
    indexes: [docs]
    env: {{AGENT_MODEL: chat, EDITION: "ONE"}}
    secrets: [DOCS_TOKEN]
    health_path: /healthz
environments:
  production:
    gateway: {{port: GATEWAY_PORT}}
"""
TOKEN = "token-from-the-shell-7c1f"
SECRET_ENV = {"DOCS_TOKEN": TOKEN}


def _client(fleet: Fleet) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"http://127.0.0.1:{fleet.gateway_port}/v1", api_key="sk-none")


def _ask(fleet: Fleet, question: str) -> str:
    answer = _client(fleet).chat.completions.create(
        model="docs-assistant", messages=[{"role": "user", "content": question}]
    )
    return answer.choices[0].message.content or ""


def _agent_key(fleet: Fleet) -> str:
    """The key the agent got, from the agent's own owner-only table (where its
    environment is kept so a crashed replica restarts with it)."""
    table = json.loads((fleet.home / "agent-state.json").read_text())
    rows = [r for r in table["replicas"] if r["spec"]["service"] == "docs-assistant"]
    return str(rows[0]["spec"]["launch"]["env"]["OPENAI_API_KEY"])


def _everything_recorded(fleet: Fleet, status: str) -> str:
    """The state database, every log and what status and logs print, as one text."""
    logs = fleet.run("logs", "docs-assistant").stdout
    assert "Uvicorn running on http://127.0.0.1:" in logs  # the agent's own output
    texts = [status, logs]
    texts += [p.read_text(errors="replace") for p in (fleet.home / "logs").rglob("*.log")]
    with sqlite3.connect(fleet.home / "state.db") as db:
        for (table,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'"):
            texts += [repr(row) for row in db.execute(f'SELECT * FROM "{table}"')]
    return "\n".join(texts)


def test_an_agent_is_planned_applied_reached_scoped_restarted_and_rotated(fleet: Fleet) -> None:
    """plan and status show the agent; an OpenAI client streams from it through the
    gateway; its key reaches its model and gets 403 elsewhere, and is never recorded;
    a killed agent is restarted; a changed agent is replaced with a new key and the
    old one revoked; destroy revokes the last."""
    fleet.write(SPEC)
    plan = fleet.run("plan", "--detailed-exitcode", check=False, env=SECRET_ENV)
    assert plan.returncode == 2, plan.stdout + plan.stderr
    assert "+ docs-assistant[0]" in plan.stdout
    fleet.run("apply", "--yes", env=SECRET_ENV)
    status_text = fleet.run("status", "--json").stdout
    agents = [r for r in json.loads(status_text)["replicas"] if r["service"] == "docs-assistant"]
    assert [(r["engine"], r["state"]) for r in agents] == [("agent", "ready")]

    stream = _client(fleet).chat.completions.create(
        model="docs-assistant", messages=[{"role": "user", "content": "hello"}], stream=True
    )
    parts = [c.choices[0].delta.content or "" for c in stream if c.choices]
    assert len(parts) > 2 and "".join(parts).startswith("[docs-assistant] ")
    assert "docs-assistant" in [m.id for m in _client(fleet).models.list().data]
    assert _ask(fleet, "use:other hi") == "refused 403"  # out of its key's scope
    assert _ask(fleet, "use:chat hi").startswith("[docs-assistant] ")
    assert _ask(fleet, "env:DOCS_TOKEN") == TOKEN
    assert _ask(fleet, "env:LLMFLEET_INDEX_DOCS") == str(
        fleet.root / ".llmfleet/indexes/production/docs"
    )
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    traced = _client(fleet).chat.completions.create(
        model="docs-assistant",
        messages=[{"role": "user", "content": "trace"}],
        extra_headers={"traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"},
    )
    assert trace_id in (traced.choices[0].message.content or "")  # the same trace, on
    metrics = httpx.get(f"http://127.0.0.1:{fleet.gateway_port}/metrics").text
    used = re.search(
        r'^llmfleet_gateway_agent_tokens_total\{agent="docs-assistant",kind="completion",'
        r'service="chat"\} (\S+)$',
        metrics,
        re.MULTILINE,
    )
    assert used is not None and float(used[1]) > 0, metrics  # the agent's own token use
    first_key = _agent_key(fleet)
    assert first_key not in _everything_recorded(fleet, status_text)

    agent = next(r for r in fleet.replicas() if r.service == "docs-assistant")
    assert agent.pid is not None
    os.killpg(agent.pid, signal.SIGKILL)
    fleet.wait_for(
        lambda: (
            [(r.state, r.restarts) for r in fleet.replicas() if r.service == "docs-assistant"]
            == [("ready", 1)]
        ),
        timeout=30,
        what="the killed agent restarted",
    )
    assert _ask(fleet, "use:chat again").startswith("[docs-assistant] ")

    fleet.write(SPEC.replace('EDITION: "ONE"', 'EDITION: "TWO"'))
    assert "-/+" in fleet.run("plan", check=False, env=SECRET_ENV).stdout
    fleet.run("apply", "--yes", env=SECRET_ENV)
    assert _ask(fleet, "env:EDITION") == "TWO"
    second_key = _agent_key(fleet)
    assert second_key != first_key
    assert _revoked(fleet, first_key) and not _revoked(fleet, second_key)
    assert _ask(fleet, "use:chat third").startswith("[docs-assistant] ")
    fleet.run("destroy", "--yes")
    assert not fleet.replicas()
    assert _revoked(fleet, second_key)


def _revoked(fleet: Fleet, secret: str) -> bool:
    digest = hashlib.sha256(secret.encode()).hexdigest()
    with sqlite3.connect(fleet.home / "state.db") as db:
        query = "SELECT name, services, revoked_at FROM llmfleet_api_keys WHERE secret_sha256 = ?"
        ((name, services, revoked_at),) = db.execute(query, (digest,)).fetchall()
    assert name.startswith("agent production/production-docs-assistant-0-")
    assert json.loads(services) == ["chat"]
    return revoked_at is not None
