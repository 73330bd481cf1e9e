"""Validate, promote, rollback and upgrade end to end: the real CLI, agent and sim engine."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx

from llmfleet.state.store import StateStore
from tests.fixtures.fleet import Fleet

SUITE = """
service: chat
cases:
  - name: says-something
    prompt: Say hello.
    max_tokens: 8
    checks: [{regex: "\\\\w+"}]
  - name: chat-form
    messages: [{role: user, content: "What is 2+2?"}]
    max_tokens: 8
    checks: [{regex: "[a-z]"}]
"""

SPEC = """
services:
  chat:
    model: sim:tiny
    engine: {kind: sim, version: "VERSION", args: ARGS}
    validation:
      quality: suite.yaml
      speed: {concurrency: [2], duration_s: DURATION, rounds: 2, max_tokens: 16}
      gate: {min_samples: 4, min_agreement: 1.0,
             max_ttft_p95_ratio: 3.0, min_throughput_ratio: 0.5@@}
environments:
  production: {gateway: {port: GATEWAY_PORT}}
  staging: {gateway: {port: STAGING_PORT}}
"""


def setup(
    fleet: Fleet, *, version: str = "1.1.0", args: str = "[]", duration: float = 1.0, gate: str = ""
) -> None:
    (fleet.root / "suite.yaml").write_text(SUITE)
    text = SPEC.replace("VERSION", version).replace("ARGS", args).replace("@@", gate)
    fleet.write(text.replace("DURATION", str(duration)))


@contextmanager
def load(fleet: Fleet) -> Iterator[list[str]]:
    """Requests through the production gateway for the whole block; yields the failures."""
    failures: list[str] = []
    done = threading.Event()

    def loop() -> None:
        with httpx.Client(timeout=30) as client:
            while not done.is_set():
                body = {
                    "model": "chat",
                    "messages": [{"role": "user", "content": "hi"}],
                    "max_tokens": 8,
                }
                try:
                    response = client.post(
                        f"http://127.0.0.1:{fleet.gateway_port}/v1/chat/completions", json=body
                    )
                    if response.status_code != 200:
                        failures.append(f"{response.status_code} {response.text[:100]}")
                except httpx.HTTPError as exc:
                    failures.append(repr(exc))

    workers = [threading.Thread(target=loop) for _ in range(2)]
    for worker in workers:
        worker.start()
    try:
        yield failures
    finally:
        done.set()
        for worker in workers:
            worker.join()


def test_good_candidate_passes_and_is_promoted_without_failed_requests(fleet: Fleet) -> None:
    """validate passes, promote switches engine versions with zero failed requests."""
    setup(fleet)
    fleet.run("apply", "--yes")
    setup(fleet, version="1.2.0")
    refused = fleet.run("promote", check=False)
    assert refused.returncode == 1 and "never validated" in refused.stderr
    out = fleet.run("validate").stdout
    assert "validation passed" in out and "report.html" in out
    assert not fleet.replicas("staging")
    with load(fleet) as failures:
        fleet.run("promote")
    assert failures == []
    assert {r.engine_version for r in fleet.ready()} == {"1.2.0"}
    history = fleet.run("history").stdout
    assert "promotion" in history and "chat: pass" in history
    reports = list((fleet.home / "reports").glob("*/report.html"))
    assert reports and "<svg" in reports[0].read_text()


def test_a_service_that_requires_keys_is_validated_with_a_key_of_its_own(fleet: Fleet) -> None:
    """The suites get a key scoped to the service for the validation, revoked after it."""
    setup(fleet)
    fleet.write(
        fleet.spec.read_text().replace(
            "    validation:", "    auth: {required: true}\n    validation:"
        )
    )
    fleet.run("apply", "--yes")
    anonymous = httpx.post(
        f"http://127.0.0.1:{fleet.gateway_port}/v1/chat/completions",
        json={"model": "chat", "messages": [{"role": "user", "content": "hi"}]},
        timeout=30,
    )
    assert anonymous.status_code == 401
    out = fleet.run("validate").stdout
    assert "validation passed" in out
    keys = fleet.run("keys", "list").stdout
    assert "llmfleet-validation" in keys and "revoked" in keys and "active" not in keys


def test_slower_candidate_fails_the_gate_and_production_stays(fleet: Fleet) -> None:
    """A sim made 10x slower fails; promote refuses it; --force needs and records a reason."""
    setup(fleet)
    fleet.run("apply", "--yes")
    before = {r.replica_id for r in fleet.ready()}
    setup(fleet, args='["--tps", "15"]')
    failed = fleet.run("validate", check=False)
    assert failed.returncode == 3, failed.stdout + failed.stderr
    assert "FAIL" in failed.stdout and "throughput / production" in failed.stdout
    assert {r.replica_id for r in fleet.ready()} == before and not fleet.replicas("staging")
    refused = fleet.run("promote", check=False)
    assert "failed its validation" in refused.stderr
    assert "--reason" in fleet.run("promote", "--force", check=False).stderr
    fleet.run("promote", "--force", "--reason", "hotfix approved by ops")
    assert (
        "forced: hotfix approved by ops" in fleet.run("history").stdout.replace("\n", " ")
        or "hotfix" in fleet.run("history").stdout
    )


def test_promote_refuses_a_spec_changed_after_validation_and_a_held_lock(fleet: Fleet) -> None:
    setup(fleet)
    fleet.run("apply", "--yes")
    setup(fleet, version="1.2.0")
    fleet.run("validate")
    setup(fleet, version="1.2.0", args='["--slots", "2"]')
    assert "changed since its validation" in fleet.run("promote", check=False).stderr
    setup(fleet, version="1.2.0")
    with (
        StateStore.open(f"sqlite:///{fleet.home}/state.db", base_dir=fleet.root) as store,
        store.lock("apply", purpose="someone else"),
    ):
        held = fleet.run("promote", check=False)
    assert held.returncode != 0 and "lock" in held.stderr.lower()


def test_rollback_restores_the_earlier_revision_and_engine_version(fleet: Fleet) -> None:
    setup(fleet)
    fleet.run("apply", "--yes")
    setup(fleet, version="1.2.0")
    fleet.run("apply", "--yes")
    with load(fleet) as failures:
        out = fleet.run("rollback", "--reason", "answers got worse").stdout
    assert failures == []
    assert "rolled back production to revision 1" in out
    assert {r.engine_version for r in fleet.ready()} == {"1.1.0"}
    history = fleet.run("history").stdout
    assert "rollback" in history and "answers got worse" in history
    missing = fleet.run("rollback", "--to", "999", check=False)
    assert missing.returncode == 1 and "no revision 999" in missing.stderr


def test_upgrade_that_passes_is_promoted_and_written_to_the_spec(fleet: Fleet) -> None:
    setup(fleet, version="1.0.0")
    fleet.run("apply", "--yes")
    assert "1.2.0, 1.1.0" in fleet.run("upgrade", "check").stdout
    out = fleet.run("upgrade", "run", "chat").stdout
    assert "upgraded chat 1.0.0 -> 1.2.0" in out
    assert 'version: "1.2.0"' in fleet.spec.read_text()
    assert {r.engine_version for r in fleet.ready()} == {"1.2.0"}
    assert "promoted" in fleet.run("history").stdout


def test_upgrade_that_fails_leaves_production_and_the_spec_alone(fleet: Fleet) -> None:
    """An unreachable absolute SLO fails the gate; also: an unknown version is refused."""
    setup(fleet, version="1.0.0", gate=", min_throughput_tps: 100000")
    fleet.run("apply", "--yes")
    text = fleet.spec.read_text()
    result = fleet.run("upgrade", "run", "chat", check=False)
    assert result.returncode == 3 and "failed the gate" in result.stdout
    assert fleet.spec.read_text() == text
    assert {r.engine_version for r in fleet.ready()} == {"1.0.0"}
    missing = fleet.run("upgrade", "run", "chat", "--to", "9.9.9", check=False)
    assert "does not exist" in missing.stderr


def test_interrupted_validation_leaves_no_staging_and_production_untouched(fleet: Fleet) -> None:
    """Ctrl-C during the suites tears staging down; a crash is cleaned by the next validate."""
    setup(fleet, duration=20)
    fleet.run("apply", "--yes")
    before = {r.replica_id for r in fleet.ready()}
    process = subprocess.Popen(
        [sys.executable, "-m", "llmfleet", "validate", "-f", str(fleet.spec)],
        cwd=fleet.root,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    fleet.wait_for(lambda: fleet.ready("staging"), timeout=60, what="staging replicas")
    time.sleep(1.0)
    process.send_signal(signal.SIGINT)
    output, _ = process.communicate(timeout=60)
    assert process.returncode != 0, output
    assert not fleet.replicas("staging"), output
    assert {r.replica_id for r in fleet.ready()} == before
    crash = subprocess.Popen(
        [sys.executable, "-m", "llmfleet", "validate", "-f", str(fleet.spec)],
        cwd=fleet.root,
        stdout=subprocess.DEVNULL,
    )
    fleet.wait_for(lambda: fleet.ready("staging"), timeout=60, what="staging replicas")
    crash.kill()
    crash.wait()
    assert fleet.replicas("staging")
    setup(fleet, duration=0.5)
    out = fleet.run("validate").stdout
    assert "earlier validation" in out and not fleet.replicas("staging")


def test_validate_needs_production_and_warns_of_impossible_thresholds(fleet: Fleet) -> None:
    setup(fleet, duration=0.5, gate=", max_ttft_p95_s: 0")
    result = fleet.run("validate", check=False)
    assert "production is not running" in result.stderr
    fleet.run("apply", "--yes")
    result = fleet.run("validate", check=False)
    assert result.returncode == 3 and "can never pass" in result.stdout
