"""One tick of the upgrade scheduler: carry out the steps ``decide_step`` names.

The local agent runs ``llmfleet upgrade tick`` every so often (and ``upgrade
propose`` runs the same code once, for a CI job). A tick takes, per service
with an ``upgrades:`` policy, the state lock ``upgrade-SERVICE`` (never two
upgrades of one service at once), then loops: decide, act, decide again, until
the decision is to wait. Builds take the lock ``upgrade-build`` too (one build at
a time on the machine), and run as a child process at the lowest CPU and I/O
priority (``releases.building``), so serving goes on at full speed.

Restarts: a lock dies with its process (a lock of a dead process of this host
is broken by the next claim), so a tick killed mid-build leaves a lock the next
tick takes, and the build starts again (an engine install is published whole or
not at all). A tick still alive, whatever became of the agent that started it,
keeps its lock, and the next tick reports it as busy and leaves it to finish.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from llmfleet.engines.registry import get_adapter
from llmfleet.errors import FleetError, LockHeldError
from llmfleet.releases import upgrade_log
from llmfleet.releases.context import PRODUCTION, ReleaseContext
from llmfleet.releases.notices import Notice, post_notice
from llmfleet.releases.promotion import promote
from llmfleet.releases.proposals import proposal_body, write_proposal
from llmfleet.releases.scheduling import Step, StepKind, decide_step, idle_reason, pick_target
from llmfleet.releases.upgrade import Versions, plan_upgrade, version_key, write_spec
from llmfleet.releases.validation import ValidationResult, run_validation
from llmfleet.spec.loading import load_spec
from llmfleet.spec.model import ServiceSpec
from llmfleet.spec.upgrades import PromoteMode, UpgradePolicy
from llmfleet.state.locking import pid_alive

Build = Callable[[str, str], None]
"""(engine kind, version) -> None; raises ``FleetError`` when the build fails."""
MAX_STEPS = 6
BUILD_LOCK = "engine-build"
"""Not ``upgrade-...``: a service may be called ``build``."""


@dataclass
class Upgrader:
    """What a tick works with; the CLI builds the real one, tests pass fakes of the
    edges (clock, release index, build and what is installed, webhooks)."""

    ctx: ReleaseContext
    now: Callable[[], datetime]
    versions: Versions
    build: Build
    notify: Callable[[Notice], None] | None = None
    installed: Callable[[str, str], bool] | None = None
    """(engine kind, version) -> installed?; default: the engine adapter's cache"""
    proposals_dir: Path | None = None
    steps: list[tuple[str, Step]] = field(default_factory=list)


@dataclass(frozen=True)
class TickResult:
    service: str
    step: Step
    outcome: str | None = None


def policies(ctx: ReleaseContext) -> dict[str, UpgradePolicy]:
    """Production services with an ``upgrades:`` policy."""
    services = ctx.loaded.resolved.environments[PRODUCTION].services
    return {n: s.upgrades for n, s in sorted(services.items()) if s.upgrades is not None}


def run_tick(upgrader: Upgrader, names: list[str] | None = None) -> list[TickResult]:
    """One tick over the named services (default: every one with a policy)."""
    results = []
    for name in names or list(policies(upgrader.ctx)):
        try:
            with upgrader.ctx.store.lock(f"upgrade-{name}", purpose=f"upgrade {name}"):
                results.append(_tick_service(upgrader, name))
        except LockHeldError as exc:
            busy = Step(StepKind.WAIT, f"busy: the lock '{exc.name}' is held by {exc.holder}")
            results.append(TickResult(name, busy))
        upgrader.ctx = upgrader.ctx.with_loaded(load_spec(upgrader.ctx.loaded.path))
    return results


def _service(upgrader: Upgrader, name: str) -> ServiceSpec:
    return upgrader.ctx.loaded.resolved.environments[PRODUCTION].services[name]


def _tick_service(upgrader: Upgrader, name: str) -> TickResult:
    outcome = None
    for _ in range(MAX_STEPS):
        step = next_step(upgrader, name)
        upgrader.steps.append((name, step))
        if step.kind is StepKind.CHECK:
            try:
                _check(upgrader, name)
            except FleetError as exc:  # no check is recorded: the next tick looks again
                return TickResult(name, Step(StepKind.WAIT, f"no release index: {exc.message}"))
        elif step.kind is StepKind.BUILD:
            assert step.version is not None
            _build(upgrader, name, step.version)
        elif step.kind is StepKind.VALIDATE:
            assert step.version is not None
            policy = _service(upgrader, name).upgrades
            assert policy is not None
            outcome = _validate(upgrader, name, step.version, mode=policy.promote)
            return TickResult(name, step, outcome)
        else:
            return TickResult(name, step, outcome)
    return TickResult(name, step, outcome)


def next_step(upgrader: Upgrader, name: str) -> Step:
    """What ``decide_step`` says for ``name`` now."""
    ctx = upgrader.ctx
    service = _service(upgrader, name)
    assert service.upgrades is not None
    return decide_step(
        service.upgrades,
        upgrade_log.read_record(ctx.store, name),
        current=service.engine.version,
        now=upgrader.now(),
        installed=lambda version: _is_installed(upgrader, name, version),
        apply_locked=apply_locked(ctx),
    )


def _is_installed(upgrader: Upgrader, name: str, version: str) -> bool:
    kind = str(_service(upgrader, name).engine.kind)
    if upgrader.installed is not None:
        return upgrader.installed(kind, version)
    cache = upgrader.ctx.settings.cache_dir
    return get_adapter(kind).installed(version, cache_dir=cache) is not None


def apply_locked(ctx: ReleaseContext) -> bool:
    """Whether a live process holds the apply lock (one of a dead process does not
    count: the next apply breaks it)."""
    held = ctx.store.lock_info("apply")
    return held is not None and pid_alive(held.pid)


def _check(upgrader: Upgrader, name: str) -> None:
    service = _service(upgrader, name)
    released = upgrader.versions(str(service.engine.kind))
    newest = sorted(released, key=version_key, reverse=True)[: upgrade_log.KEPT_RELEASES]
    upgrade_log.record(
        upgrader.ctx.store, upgrade_log.CHECK, user=upgrader.ctx.user,
        payload={"service": name, "engine": str(service.engine.kind), "released": newest,
                 "newest": newest[0] if newest else None},
    )  # fmt: skip


def _build(upgrader: Upgrader, name: str, version: str) -> None:
    ctx, kind = upgrader.ctx, str(_service(upgrader, name).engine.kind)
    base = {"service": name, "engine": kind, "version": version}
    with ctx.store.lock(BUILD_LOCK, purpose=f"build {kind} {version} for {name}"):
        upgrade_log.record(ctx.store, upgrade_log.BUILD, user=ctx.user,
                           payload={**base, "status": "started"})  # fmt: skip
        started = time.monotonic()
        try:
            upgrader.build(kind, version)
        except FleetError as exc:
            reason = f"the build failed: {exc.message}"
            upgrade_log.record(ctx.store, upgrade_log.BUILD, user=ctx.user,
                               payload={**base, "status": "failed", "reason": reason})  # fmt: skip
            _notify(upgrader, name, Notice(name, kind, _current(upgrader, name), version,
                                           "failed", reason))  # fmt: skip
            return
        seconds = round(time.monotonic() - started, 1)
        upgrade_log.record(ctx.store, upgrade_log.BUILD, user=ctx.user,
                           payload={**base, "status": "done", "seconds": seconds})  # fmt: skip


def _current(upgrader: Upgrader, name: str) -> str:
    return _service(upgrader, name).engine.version


def _validate(
    upgrader: Upgrader, name: str, version: str, *, mode: PromoteMode, body: Path | None = None
) -> str:
    """Validate ``version`` of ``name``; when it passes, promote it (``auto``) or propose
    it: into the proposals folder, or (``body`` given: ``upgrade propose``) as an edit
    of the spec file in place plus ``body``. Returns the outcome: promoted, proposed,
    failed, inconclusive or deferred."""
    ctx = upgrader.ctx
    old, kind = _current(upgrader, name), str(_service(upgrader, name).engine.kind)
    candidate = plan_upgrade(ctx.loaded, name, version)
    cand_ctx = ctx.with_loaded(candidate.loaded)
    payload: dict[str, object] = {"service": name, "from": old, "to": version, "mode": str(mode)}
    promoted = False
    try:
        result = run_validation(cand_ctx, [name])
        payload |= {"outcome": result.outcome.value, "report": str(result.html_path),
                    "reason": _reason(result)}  # fmt: skip
        if result.passed and mode is PromoteMode.AUTO:
            promote(cand_ctx, [name], reason=f"upgrade {old} -> {version} (policy)")
            write_spec(ctx, candidate)
            promoted = True
        elif result.passed and body is not None:
            write_spec(ctx, candidate)
            body.parent.mkdir(parents=True, exist_ok=True)
            body.write_text(proposal_body(name, old, candidate, result), encoding="utf-8")
            payload["proposal"] = str(body)
        elif result.passed:
            folder = upgrader.proposals_dir or ctx.settings.home / "proposals"
            payload["proposal"] = str(write_proposal(folder, candidate, name, old, result))
    except LockHeldError as exc:
        payload |= {"outcome": "deferred", "reason": f"an apply took the state lock: {exc}"}
    payload["promoted"] = promoted
    upgrade_log.record(ctx.store, upgrade_log.OUTCOME, user=ctx.user, payload=payload)
    word = _outcome_word(payload)
    if payload["outcome"] != "deferred":
        _notify(upgrader, name, Notice(name, kind, old, version, word, str(payload["reason"]),
                                       report=str(payload.get("report", ""))))  # fmt: skip
    return word


def propose_upgrade(upgrader: Upgrader, name: str, *, body: Path) -> TickResult:
    """``upgrade propose`` for one service: look, build, validate now (no window: the CI
    job runs when it is scheduled), and on a pass edit the spec file and write ``body``.
    A service without a policy follows every release."""
    with upgrader.ctx.store.lock(f"upgrade-{name}", purpose=f"propose an upgrade of {name}"):
        _check(upgrader, name)
        service = _service(upgrader, name)
        policy = service.upgrades or UpgradePolicy()
        record = upgrade_log.read_record(upgrader.ctx.store, name)
        target = pick_target(policy, record, current=service.engine.version)
        if target is None:
            why = idle_reason(policy, record, service.engine.version)
            return TickResult(name, Step(StepKind.IDLE, why))
        if target in record.proposed:
            why = f"{target} was proposed already: {record.proposed[target]}"
            return TickResult(name, Step(StepKind.IDLE, why, target))
        step = Step(StepKind.VALIDATE, f"validate {target}, then propose it", target)
        if not _is_installed(upgrader, name, target):
            _build(upgrader, name, target)
            if not _is_installed(upgrader, name, target):
                return TickResult(name, step, "failed")
        return TickResult(
            name, step, _validate(upgrader, name, target, mode=PromoteMode.PROPOSE, body=body)
        )


def _outcome_word(payload: dict[str, object]) -> str:
    if payload["promoted"]:
        return "promoted"
    if "proposal" in payload:
        return "proposed"
    return "failed" if payload.get("outcome") == "fail" else str(payload.get("outcome"))


def _reason(result: ValidationResult) -> str:
    failed = [f"{r.service}: {v.check} ({v.detail})"
              for r in result.services for v in r.verdicts if not v.passed]  # fmt: skip
    return "; ".join(failed) or "passed every check"


def _notify(upgrader: Upgrader, name: str, notice: Notice) -> None:
    policy = _service(upgrader, name).upgrades
    if policy is None or not policy.notify:
        return
    if upgrader.notify is not None:
        upgrader.notify(notice)
        return
    hooks = upgrader.ctx.loaded.resolved.environments[PRODUCTION].observability.webhooks
    post_notice(hooks, notice)
