"""A lost state through the real CLI: every command stops with the way back, and
`llmfleet state restore` brings the last snapshot back (never under a live apply)."""

from __future__ import annotations

import os
from typing import Any

from llmfleet.state import StateStore
from tests.fixtures.fleet import Fleet
from tests.fixtures.specs import one_sim_service

SPEC = one_sim_service(port="GATEWAY_PORT")
URL = "sqlite:///.llmfleet/state.db"


def recorded(fleet: Fleet, *messages: str) -> int:
    """Record revisions in the fleet's state as apply would (no runtime needed)."""
    serial = 0
    with StateStore.open(URL, base_dir=fleet.root) as store:
        for message in messages:
            fields: dict[str, Any] = {"spec": {}, "plan": {"actions": []}, "spec_hash": "a"}
            serial = store.record_revision(
                environment="production", kind="apply", user="ada", message=message,
                outcome="success", expected_serial=None, **fields,
            ).serial  # fmt: skip
    return serial


def test_a_truncated_state_stops_history_and_restore_brings_it_back(fleet: Fleet) -> None:
    fleet.write(SPEC)
    serial = recorded(fleet, "first apply", "second apply")
    os.truncate(fleet.home / "state.db", 0)
    lost = fleet.run("history", check=False)
    assert lost.returncode == 1, lost.stdout + lost.stderr
    assert "is empty" in lost.stderr and f"llmfleet state restore {serial}" in lost.stderr
    assert "Traceback" not in lost.stderr and "busy" not in lost.stderr
    listed = fleet.run("state", "restore", "--list")
    assert f"{serial - 1}" in listed.stdout and f"{serial}" in listed.stdout
    assert "empty" in listed.stdout  # what the state is now
    restored = fleet.run("state", "restore")
    assert f"restored the state of serial {serial}" in restored.stdout
    assert "replaced-" in restored.stdout  # where the empty file went
    history = fleet.run("history").stdout
    assert "first apply" in history and "second apply" in history


def test_restore_is_refused_while_an_apply_holds_the_lock(fleet: Fleet) -> None:
    fleet.write(SPEC)
    recorded(fleet, "first apply")
    with (
        StateStore.open(URL, base_dir=fleet.root) as store,
        store.lock(purpose="apply production"),
    ):
        refused = fleet.run("state", "restore", "--yes", check=False)
    assert refused.returncode == 1
    assert "is held by" in refused.stderr and f"pid {os.getpid()}" in refused.stderr


def test_restore_over_a_readable_state_asks_first(fleet: Fleet) -> None:
    fleet.write(SPEC)
    first = recorded(fleet, "first apply")
    recorded(fleet, "second apply")
    declined = fleet.run("state", "restore", str(first), check=False)
    assert declined.returncode == 1 and "at serial 2" in declined.stdout
    assert "second apply" in fleet.run("history").stdout
    fleet.run("state", "restore", str(first), "--yes")
    assert "second apply" not in fleet.run("history").stdout


def test_a_postgresql_state_is_pointed_at_its_server_backups(fleet: Fleet) -> None:
    fleet.write("state: postgresql://llmfleet@127.0.0.1:1/fleet\n" + SPEC)
    result = fleet.run("state", "restore", "--list", check=False)
    assert result.returncode == 1
    assert "pg_dump" in result.stderr and "Traceback" not in result.stderr
