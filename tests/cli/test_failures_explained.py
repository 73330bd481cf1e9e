"""Failures say what happened and what to do (issue 17): a failed apply leaves its
failed replicas in ``status`` with their reason, their output in ``logs`` (also once
stopped, also after ``down``), and a gateway that answers at once that the service
has no ready replica, and why."""

from __future__ import annotations

import json
import time

import httpx

from tests.fixtures.fleet import Fleet
from tests.fixtures.specs import one_sim_service

FAILING = one_sim_service(port="GATEWAY_PORT").replace(
    'version: "1.2.0"}', 'version: "1.2.0", args: ["--fail-start"]}'
)


def test_a_failed_apply_is_explained_by_status_logs_ask_and_the_gateway(fleet: Fleet) -> None:
    """After an apply whose replica crash-loops: status lists it as failed with its exit,
    ask fails at once naming the reason, logs shows its output (with and without the
    agent), and the apply's hint names the logs command with -f once."""
    fleet.write(FAILING)
    applied = fleet.run("apply", "--yes", check=False)
    assert applied.returncode == 1
    spec = str(fleet.spec)
    said = " ".join(applied.stderr.split())
    assert said.count("llmfleet logs chat") == 1
    assert f"llmfleet logs chat -f {spec}" in said

    status = " ".join(fleet.run("status").stdout.split())
    assert "failed" in status and "production-chat-0-" in status
    assert "exited 3 times" in status and "exited with code 1" in status
    assert "no ready replica: chat" in status
    failed = json.loads(fleet.run("status", "--json").stdout)["failed"]
    assert [f["service"] for f in failed] == ["chat"]
    assert "exited with code 1" in failed[0]["reason"]

    started = time.monotonic()
    asked = fleet.run("ask", "chat", "hello", check=False, timeout=30)
    assert time.monotonic() - started < 10  # it waited 60 s in silence
    assert asked.returncode == 1
    said = " ".join(asked.stderr.split())  # rich folds long lines at COLUMNS
    assert "no ready replica" in said and "exited with code 1" in said
    assert f"llmfleet logs chat -f {spec}" in said

    started = time.monotonic()
    answer = httpx.post(
        f"http://127.0.0.1:{fleet.gateway_port}/v1/chat/completions",
        json={"model": "chat", "messages": [{"role": "user", "content": "hi"}]},
        timeout=30,
    )
    assert time.monotonic() - started < 5
    assert answer.status_code == 503
    assert "exited with code 1" in answer.json()["error"]["message"]

    for when in ("agent running", "after down"):
        shown = fleet.run("logs", "chat")
        assert "failing at start on purpose" in shown.stdout, when
        assert "llmfleet: the engine exited with code 1" in shown.stdout, when
        assert "production-chat-0-" in shown.stdout, when
        fleet.run("down")
    assert not fleet.backend.running()  # logs read the files; they start nothing


def test_logs_show_a_replica_that_was_stopped_and_how_it_ended(fleet: Fleet) -> None:
    """After destroy, the replica's output is still there, ending with who stopped it
    and how its process ended."""
    fleet.write(one_sim_service(port="GATEWAY_PORT"))
    fleet.run("apply", "--yes")
    [replica] = fleet.ready()
    fleet.run("destroy", "--yes")
    shown = fleet.run("logs", "chat").stdout
    assert replica.replica_id in shown and "stopped" in shown
    assert "llmfleet: stopped by llmfleet" in shown
    assert "exited with code 0" in shown or "SIGTERM" in shown
    gateway = fleet.run("logs", "gateway").stdout
    assert "gateway-production" in gateway and "llmfleet: stopped by llmfleet" in gateway
