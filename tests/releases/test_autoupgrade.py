"""The upgrade scheduler's ticks on a real sim fleet, with an injected clock (no sleeps).

The clock, the release index, the build and the webhooks are the injected edges;
the state store, the agent, staging, the gate and the spec edit are real.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from zoneinfo import ZoneInfo

from llmfleet.cli.releases import release_context
from llmfleet.errors import EngineError
from llmfleet.releases import upgrade_log
from llmfleet.releases.autoupgrade import Upgrader, run_tick
from llmfleet.releases.notices import Notice
from llmfleet.releases.scheduling import StepKind
from llmfleet.state.store import StateStore
from tests.fixtures.fleet import Fleet
from tests.releases.test_release_flow import SUITE

SPEC = """
services:
  chat:
    model: sim:tiny
    engine: {kind: sim, version: "1.0.0"}
    upgrades:
      window: {days: [sat], start: "02:00", end: "05:00", time_zone: Europe/Berlin}
    validation:
      quality: suite.yaml
      speed: {concurrency: [2], duration_s: 0.5, rounds: 1, max_tokens: 8}
      gate: {min_samples: 1, max_ttft_p95_ratio: 100, min_throughput_ratio: 0@@}
environments:
  production: {gateway: {port: GATEWAY_PORT}}
  staging: {gateway: {port: STAGING_PORT}}
"""
BERLIN = ZoneInfo("Europe/Berlin")
FRIDAY_NOON = datetime(2026, 12, 4, 12, tzinfo=BERLIN)
SATURDAY_3AM = datetime(2026, 12, 5, 3, tzinfo=BERLIN)


class Edges:
    """The injected edges: a clock that moves only when told, a release index, a build
    that marks a version installed, and the notices that would go to webhooks."""

    def __init__(self) -> None:
        self.now = FRIDAY_NOON
        self.installed = {"1.0.0"}
        self.builds: list[str] = []
        self.notices: list[Notice] = []
        self.index_down = False

    def versions(self, kind: str) -> list[str]:
        if self.index_down:
            raise EngineError("the package index did not answer: connection refused")
        return ["1.2.0", "1.1.0", "1.0.0"]

    def build(self, kind: str, version: str) -> None:
        self.builds.append(version)
        self.installed.add(version)

    @contextmanager
    def upgrader(self, fleet: Fleet) -> Iterator[Upgrader]:
        with release_context(fleet.spec) as ctx:
            yield Upgrader(
                ctx=ctx,
                now=lambda: self.now,
                versions=self.versions,
                build=self.build,
                notify=self.notices.append,
                installed=lambda kind, version: version in self.installed,
            )


def setup(fleet: Fleet, *, gate: str = "") -> Edges:
    (fleet.root / "suite.yaml").write_text(SUITE)
    fleet.write(SPEC.replace("@@", gate))
    return Edges()


def tick(fleet: Fleet, edges: Edges) -> list[StepKind]:
    with edges.upgrader(fleet) as upgrader:
        results = run_tick(upgrader)
        return [step.kind for _, step in upgrader.steps] + [results[0].step.kind]


def test_found_built_outside_the_window_and_promoted_only_inside_it(fleet: Fleet) -> None:
    """Friday: found and built, then it waits (spec and replicas untouched); a second
    tick neither builds again nor validates; Saturday 03:00 Berlin: validated,
    promoted, the spec line rewritten, a notice sent."""
    edges = setup(fleet)
    fleet.run("apply", "--yes")
    text = fleet.spec.read_text()
    assert tick(fleet, edges)[:3] == [StepKind.CHECK, StepKind.BUILD, StepKind.WAIT]
    assert edges.builds == ["1.2.0"]
    assert tick(fleet, edges)[-1] is StepKind.WAIT and edges.builds == ["1.2.0"]
    assert fleet.spec.read_text() == text
    assert {r.engine_version for r in fleet.ready()} == {"1.0.0"}
    edges.now = SATURDAY_3AM
    assert StepKind.VALIDATE in tick(fleet, edges)
    assert 'version: "1.2.0"' in fleet.spec.read_text()
    assert {r.engine_version for r in fleet.ready()} == {"1.2.0"}
    assert [(n.new, n.outcome) for n in edges.notices] == [("1.2.0", "promoted")]
    assert tick(fleet, edges)[-1] is StepKind.IDLE  # up to date
    status = fleet.run("upgrade", "status").stdout
    assert "1.0.0 -> 1.2.0: promoted" in status and "next window" in status


def test_a_failing_candidate_is_remembered_with_its_reason_and_not_retried(
    fleet: Fleet,
) -> None:
    edges = setup(fleet, gate=", min_throughput_tps: 100000")
    fleet.run("apply", "--yes")
    edges.now = SATURDAY_3AM
    text = fleet.spec.read_text()
    assert StepKind.VALIDATE in tick(fleet, edges)
    assert fleet.spec.read_text() == text
    assert [(n.new, n.outcome) for n in edges.notices] == [("1.2.0", "failed")]
    assert (
        "min_throughput_tps" in edges.notices[0].reason or "throughput" in edges.notices[0].reason
    )
    steps = tick(fleet, edges)
    assert steps == [StepKind.IDLE, StepKind.IDLE] and len(edges.notices) == 1
    status = fleet.run("upgrade", "status").stdout
    assert "1.2.0 failed" in status and "waiting for a newer release" in status


def test_an_apply_holding_the_state_lock_defers_the_upgrade(fleet: Fleet) -> None:
    edges = setup(fleet)
    with (
        StateStore.open(f"sqlite:///{fleet.home}/state.db", base_dir=fleet.root) as store,
        store.lock("apply", purpose="someone's apply"),
    ):
        assert tick(fleet, edges) == [StepKind.DEFER, StepKind.DEFER]
    assert tick(fleet, edges)[:2] == [StepKind.CHECK, StepKind.BUILD]


def test_a_release_index_that_does_not_answer_is_a_wait_and_asked_again(fleet: Fleet) -> None:
    edges = setup(fleet)
    edges.index_down = True
    with edges.upgrader(fleet) as upgrader:
        [result] = run_tick(upgrader)
    assert result.step.kind is StepKind.WAIT and "connection refused" in result.step.reason
    edges.index_down = False
    assert tick(fleet, edges)[:2] == [StepKind.CHECK, StepKind.BUILD]


HOLD_LOCK = """
import sys, time
from pathlib import Path
from llmfleet.state.store import StateStore
store = StateStore.open(sys.argv[1], base_dir=Path(sys.argv[2]))
store.record_event(kind="upgrade-build", environment="production", serial=None, user="agent",
                   payload={"service": "chat", "engine": "sim", "version": "1.2.0",
                            "status": "started"})
with store.lock("upgrade-chat", purpose="upgrade chat"):
    print("building", flush=True)
    time.sleep(600)
"""


def test_a_tick_killed_mid_build_is_left_alone_while_alive_and_restarted_once_dead(
    fleet: Fleet,
) -> None:
    """A tick (the agent's child) that still builds keeps its lock: the next tick
    reports it busy. Killed (the agent and its children gone), its lock is broken
    and the build starts again, recorded from the start."""
    edges = setup(fleet)
    fleet.home.mkdir(exist_ok=True)
    url = f"sqlite:///{fleet.home}/state.db"
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(HOLD_LOCK), url, str(fleet.root)],
        stdout=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "building"
        with edges.upgrader(fleet) as upgrader:
            [busy] = run_tick(upgrader)
            assert busy.step.kind is StepKind.WAIT and "upgrade-chat" in busy.step.reason
            assert upgrade_log.building(upgrader.ctx.store, "chat") is not None
    finally:
        os.killpg(holder.pid, signal.SIGKILL)
        holder.wait()
        assert holder.stdout is not None
        holder.stdout.close()
    assert edges.builds == []
    steps = tick(fleet, edges)
    assert steps[:2] == [StepKind.CHECK, StepKind.BUILD] and edges.builds == ["1.2.0"]
    with StateStore.open(url, base_dir=fleet.root) as store:
        assert upgrade_log.building(store, "chat") is None
        builds = store.events("upgrade-build", environment="production")
        assert [e.payload["status"] for e in builds] == ["done", "started", "started"]


def test_the_agent_carries_the_policy_out_on_its_own(fleet: Fleet) -> None:
    """No command after apply: the agent's tick finds 1.2.0, validates it and promotes
    it (no window: any time), and rewrites the spec line; status tells the story."""
    setup(fleet)
    fleet.write(
        fleet.spec.read_text().replace(
            'window: {days: [sat], start: "02:00", end: "05:00", time_zone: Europe/Berlin}',
            "notify: false",
        )
    )
    fleet.run("apply", "--yes", env={"LLMFLEET_UPGRADE_TICK_S": "0.5"})
    fleet.wait_for(
        lambda: '"1.2.0"' in fleet.spec.read_text(), timeout=120, what="the agent's upgrade"
    )
    assert {r.engine_version for r in fleet.ready()} == {"1.2.0"}
    status = fleet.run("upgrade", "status").stdout
    assert "1.0.0 -> 1.2.0: promoted" in status and "up to date on 1.2.0" in status
    assert "promote" in fleet.run("history").stdout


def test_propose_edits_the_spec_and_writes_the_body_with_exit_codes_for_ci(
    fleet: Fleet,
) -> None:
    """Exit 2 with a proposal (spec line edited, markdown body written, production
    untouched); then exit 0: the spec is on the newest version."""
    setup(fleet)
    fleet.run("apply", "--yes")
    proposed = fleet.run("upgrade", "propose", "--body", "pr.md", check=False)
    assert proposed.returncode == 2, proposed.stdout + proposed.stderr
    assert 'version: "1.2.0"' in fleet.spec.read_text()
    body = (fleet.root / "pr.md").read_text()
    assert "## Upgrade chat: engine 1.0.0 -> 1.2.0" in body and "| chat |" in body
    assert {r.engine_version for r in fleet.ready()} == {"1.0.0"}
    again = fleet.run("upgrade", "propose", "--body", "pr.md", check=False)
    assert again.returncode == 0 and "up to date on 1.2.0" in again.stdout
