"""``--json`` output: documents with stable field names that tools can parse, on stdout alone."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from llmfleet import __version__
from tests.fixtures.fleet import Fleet

SPEC = """services:
  chat:
    model: sim:tiny
    engine: {kind: sim, version: "1.2.0"}
    replicas: 1
    labels: {team: search}
environments:
  production: {gateway: {port: GATEWAY_PORT}}
"""


def as_json(fleet: Fleet, *args: str, code: int = 0) -> dict[str, Any]:
    result = fleet.run(*args, "--json", check=False)
    assert result.returncode == code, (result.stdout, result.stderr)
    body = json.loads(result.stdout)
    assert isinstance(body, dict)
    assert body["format_version"] == 1
    return body


def test_version() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "llmfleet", "--version"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"llmfleet {__version__}"


def test_check_json_lists_environments_and_problems_with_places(fleet: Fleet) -> None:
    """A valid spec: ok and one entry per environment. An invalid one: ok false, exit 2,
    every problem with file, line, column, path and message."""
    fleet.write(SPEC)
    body = as_json(fleet, "check")
    assert body["ok"] is True
    assert body["problems"] == []
    [env] = body["environments"]
    assert env == {
        "name": "production",
        "services": 1,
        "replicas": 1,
        "gateway": f"127.0.0.1:{fleet.gateway_port}",
    }
    fleet.write(SPEC.replace("replicas: 1", "replicas: 0"))
    body = as_json(fleet, "check", code=2)
    assert body["ok"] is False
    [problem] = body["problems"]
    assert problem["line"] == 5 and problem["column"] == 5
    assert problem["path"] == "services.chat.replicas"
    assert problem["message"] == "must be >= 1, got 0"
    assert problem["file"].endswith("fleet.yaml")


def test_status_plan_and_history_json_before_and_after_apply(fleet: Fleet) -> None:
    """Before apply: not running, a plan that creates; after: the replica, the gateway,
    a plan without changes and the revision in history."""
    fleet.write(SPEC)
    assert as_json(fleet, "status") == {
        "format_version": 1,
        "running": False,
        "replicas": [],
        "gateways": [],
        "failed": [],
        "warnings": [],
    }
    plan = as_json(fleet, "plan", "--detailed-exitcode", code=2)
    assert plan["environment"] == "production" and plan["has_changes"] is True
    assert {(a["op"], a["target"], a["address"]) for a in plan["actions"]} == {
        ("create", "replica", "chat[0]"),
        ("create", "gateway", "gateway"),
    }
    assert plan["summary"].startswith("Plan: 2 to create")
    fleet.run("apply", "--yes", "-m", "first")
    status = as_json(fleet, "status")
    assert status["running"] is True
    [replica] = status["replicas"]
    assert replica["service"] == "chat" and replica["slot"] == 0
    assert replica["engine"] == "sim" and replica["engine_version"] == "1.2.0"
    assert replica["state"] in ("ready", "starting")
    assert isinstance(replica["port"], int) and isinstance(replica["pid"], int)
    assert replica["labels"] == {"team": "search"}
    [gateway] = status["gateways"]
    assert gateway["url"] == f"http://127.0.0.1:{fleet.gateway_port}"
    assert as_json(fleet, "plan")["actions"] == []
    history = as_json(fleet, "history")
    [revision] = history["revisions"]
    assert revision["kind"] == "apply" and revision["outcome"] == "success"
    assert revision["message"] == "first" and revision["changes"] == 2
    assert revision["created_at"].endswith("Z")
    assert history["events"] == []
    alerts = as_json(fleet, "alerts")
    assert alerts["alerts"] == [] and "gpu" in alerts
