"""The local runtime end to end with the sim engine, through the real CLI and agent."""

from __future__ import annotations

import os
import signal
import socket
import threading
import time

import httpx

from tests.fixtures.fleet import Fleet

SPEC = """
services:
  chat:
    model: sim:tiny
    engine: {kind: sim, version: "VERSION", args: ["--ttft", "0.01", "--tps", "400"]}
    replicas: REPLICAS
    labels: {team: demo}
environments:
  production:
    gateway: {port: GATEWAY_PORT}
  staging:
    gateway: {port: STAGING_PORT}
"""


def spec(*, version: str = "1.0.0", replicas: int = 2) -> str:
    return SPEC.replace("VERSION", version).replace("REPLICAS", str(replicas))


def test_apply_runs_replicas_and_a_no_op_apply_changes_nothing(fleet: Fleet) -> None:
    """apply starts 2 ready replicas on 127.0.0.1 and the gateway; applying again is a no-op."""
    fleet.write(spec())
    out = fleet.run("apply", "--yes", "-m", "first").stdout
    assert "Apply complete" in out
    replicas = fleet.ready()
    assert sorted(r.slot for r in replicas) == [0, 1]
    assert len({r.port for r in replicas}) == 2
    answer = fleet.chat("hello there", max_tokens=4)
    assert answer["model"] == "chat" and answer["usage"]["completion_tokens"] == 4
    again = fleet.run("apply", "--yes")
    assert "No changes" in again.stdout
    assert fleet.run("plan", "--detailed-exitcode", check=False).returncode == 0
    history = fleet.run("history").stdout
    assert "first" in history and history.count("success") == 1


def test_an_observability_only_change_is_planned_and_pushed(fleet: Fleet) -> None:
    """Changing only `observability:` is a change: planned, applied in place, then converged."""
    fleet.write(spec(replicas=1))
    fleet.run("apply", "--yes")
    before = {r.replica_id for r in fleet.ready()}
    fleet.write(spec(replicas=1) + "observability: {trace_sample_ratio: 1.0}\n")
    planned = fleet.run("plan", "--detailed-exitcode", check=False)
    assert planned.returncode == 2, planned.stdout
    assert "~ observability" in planned.stdout
    assert "trace_sample_ratio: 0.1 -> 1.0" in planned.stdout
    fleet.run("apply", "--yes")
    config = fleet.backend.environment_config("production")
    assert config["observability"]["trace_sample_ratio"] == 1.0
    assert {r.replica_id for r in fleet.ready()} == before  # in place: nothing restarted
    assert fleet.run("plan", "--detailed-exitcode", check=False).returncode == 0


def test_keys_made_by_the_cli_open_the_applied_gateway_until_revoked(fleet: Fleet) -> None:
    """The gateway apply starts reads the keys from the state store (URL in its env)."""
    fleet.write(spec(replicas=1).replace("    labels:", "    auth: {required: true}\n    labels:"))
    fleet.run("apply", "--yes")
    url = f"http://127.0.0.1:{fleet.gateway_port}/v1/chat/completions"
    body = {"model": "chat", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
    assert httpx.post(url, json=body, timeout=30).status_code == 401
    secret = fleet.run("keys", "create", "ci", "-s", "chat").stdout.strip().splitlines()[-1]
    headers = {"Authorization": f"Bearer {secret}"}
    assert httpx.post(url, json=body, headers=headers, timeout=30).status_code == 200
    fleet.run("keys", "revoke", "ci")
    deadline = time.monotonic() + 15  # gateways cache a verdict for 10 s
    status = 200
    while status == 200 and time.monotonic() < deadline:
        status = httpx.post(url, json=body, headers=headers, timeout=30).status_code
        time.sleep(0.5)
    assert status == 401


def test_engines_listen_on_loopback_only(fleet: Fleet) -> None:
    """Every replica's port answers on 127.0.0.1 and refuses on other addresses."""
    fleet.write(spec(replicas=1))
    fleet.run("apply", "--yes")
    port = fleet.ready()[0].port
    addresses = {
        info[4][0] for info in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET)
    }
    addresses.discard("127.0.0.1")
    for address in addresses:
        with socket.socket() as sock:
            sock.settimeout(1)
            assert sock.connect_ex((address, port)) != 0


def test_changed_field_is_a_rolling_replace_with_a_ready_replica_at_every_moment(
    fleet: Fleet,
) -> None:
    """Changing the engine version plans -/+ per replica and never leaves 0 ready replicas."""
    fleet.write(spec(version="1.0.0"))
    fleet.run("apply", "--yes")
    before = {r.replica_id for r in fleet.ready()}
    fleet.write(spec(version="1.1.0"))
    plan = fleet.run("plan", "--detailed-exitcode", check=False)
    assert plan.returncode == 2
    assert plan.stdout.count("-/+ chat[") == 2
    assert "engine.version: 1.0.0 -> 1.1.0" in plan.stdout
    lowest = watch_ready_count(fleet, lambda: fleet.run("apply", "--yes"))
    assert lowest >= 1
    after = fleet.ready()
    assert {r.replica_id for r in after}.isdisjoint(before)
    assert {r.engine_version for r in after} == {"1.1.0"}


def watch_ready_count(fleet: Fleet, action: object) -> int:
    """Run ``action`` while sampling the number of ready replicas; return the lowest."""
    lowest = [99]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            lowest[0] = min(lowest[0], len(fleet.ready()))
            time.sleep(0.02)

    watcher = threading.Thread(target=sample)
    watcher.start()
    try:
        action()  # type: ignore[operator]
    finally:
        done.set()
        watcher.join()
    return lowest[0]


def test_killed_replica_is_restarted(fleet: Fleet) -> None:
    """kill -9 of a replica: the agent restarts it and counts the restart."""
    fleet.write(spec(replicas=1))
    fleet.run("apply", "--yes")
    victim = fleet.ready()[0]
    assert victim.pid is not None
    os.kill(victim.pid, signal.SIGKILL)
    fleet.wait_for(
        lambda: any(r.restarts == 1 and r.state == "ready" for r in fleet.replicas()),
        what="restart",
    )
    (replica,) = fleet.replicas()
    assert replica.pid != victim.pid and replica.replica_id == victim.replica_id
    status = fleet.run("status").stdout
    assert "ready" in status and "production-chat-0" in status


def test_engine_crashing_at_start_is_a_crash_loop_with_its_log_tail(fleet: Fleet) -> None:
    """A replica that exits at once fails the apply quickly with its last log lines."""
    fleet.write(spec(replicas=1))
    fleet.run("apply", "--yes")
    good = fleet.ready()[0]
    fleet.write(spec(replicas=1).replace('"--tps", "400"', '"--tps", "400", "--fail-start"'))
    started = time.monotonic()
    result = fleet.run("apply", "--yes", check=False)
    assert result.returncode != 0
    assert time.monotonic() - started < 60
    assert "crash-looping" in result.stderr
    assert "|" in result.stderr  # the log tail
    assert "Traceback" not in result.stderr
    assert [r.replica_id for r in fleet.ready()] == [good.replica_id]  # old one kept serving
    assert "failed" in fleet.run("history").stdout


def test_destroy_stops_everything_and_is_recorded(fleet: Fleet) -> None:
    """destroy stops the replicas and the gateway and records a destroy revision."""
    fleet.write(spec())
    fleet.run("apply", "--yes")
    fleet.run("destroy", "--yes")
    assert fleet.replicas() == []
    assert fleet.backend.gateways() == []
    assert "destroy" in fleet.run("history").stdout
    plan = fleet.run("plan")
    assert "new replica" in plan.stdout  # destroy forgot the services


def test_down_stops_the_agent_and_apply_brings_it_back(fleet: Fleet) -> None:
    """down stops the whole runtime; the next plan shows the replicas missing as drift."""
    fleet.write(spec(replicas=1))
    fleet.run("apply", "--yes")
    pid = fleet.ready()[0].pid
    fleet.run("down")
    assert not fleet.backend.running()
    assert pid is not None
    fleet.wait_for(lambda: not _alive(pid), timeout=10, what="replica to exit")
    assert "drift" in fleet.run("plan").stdout
    fleet.run("apply", "--yes")
    assert len(fleet.ready()) == 1


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_agent_killed_adopts_running_replicas_on_restart(fleet: Fleet) -> None:
    """After the agent dies, a new agent adopts the replicas still running: no restart."""
    fleet.write(spec(replicas=1))
    fleet.run("apply", "--yes")
    before = fleet.ready()[0]
    agent_pid = int(fleet.backend._call("GET", "/v1/agent")["pid"])
    os.kill(agent_pid, signal.SIGKILL)
    fleet.wait_for(lambda: not _alive(agent_pid), timeout=10, what="agent to die")
    fleet.backend.ensure_agent()
    fleet.wait_for(lambda: len(fleet.ready()) == 1, what="adopted replica ready")
    after = fleet.ready()[0]
    assert (after.pid, after.replica_id) == (before.pid, before.replica_id)
    assert "No changes" in fleet.run("plan").stdout


def test_gateway_port_in_use_is_a_clear_error(fleet: Fleet) -> None:
    """A gateway port taken by another program fails the apply with a message, no traceback."""
    fleet.write(spec(replicas=1))
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", fleet.gateway_port))
        squatter.listen()
        result = fleet.run("apply", "--yes", check=False)
    assert result.returncode != 0
    said = " ".join(result.stderr.split())
    assert f"port {fleet.gateway_port} is in use by pid {os.getpid()}" in said  # this test
    assert "Traceback" not in result.stderr


def test_staging_and_production_are_separate(fleet: Fleet) -> None:
    """Applying staging starts its own replicas and gateway and leaves production alone."""
    fleet.write(spec(replicas=1))
    fleet.run("apply", "--yes")
    production = {r.replica_id for r in fleet.ready()}
    fleet.run("apply", "--yes", "--env", "staging")
    assert {r.replica_id for r in fleet.ready()} == production
    assert len(fleet.ready("staging")) == 1
    assert (
        fleet.chat("hi", port=fleet.staging_port, max_tokens=2)["usage"]["completion_tokens"] == 2
    )
    fleet.run("destroy", "--yes", "--env", "staging")
    assert {r.replica_id for r in fleet.ready()} == production


def test_second_apply_while_one_runs_is_refused_naming_the_holder(fleet: Fleet) -> None:
    """Two applies at once: the second fails at once, naming who holds the lock and since when."""
    import subprocess
    import sys

    fleet.write(spec(replicas=1).replace('"--tps", "400"', '"--tps", "400", "--load-time", "3"'))
    first = subprocess.Popen(
        [sys.executable, "-m", "llmfleet", "apply", "--yes", "-f", str(fleet.spec)],
        cwd=fleet.root,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        fleet.wait_for(lambda: len(fleet.replicas()) == 1, what="first apply to start a replica")
        second = fleet.run("apply", "--yes", check=False)
        assert second.returncode != 0
        assert "is held by" in second.stderr and "since" in second.stderr
        assert "Traceback" not in second.stderr
    finally:
        _, first_err = first.communicate(timeout=60)
    assert first.returncode == 0, first_err
    assert len(fleet.ready()) == 1
