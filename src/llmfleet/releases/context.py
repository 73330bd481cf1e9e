"""What a release command works with, and the one way it changes an environment.

Every change (staging deploy, teardown, promote, rollback) is ``plan_changes`` or
``plan_destroy`` then ``apply_plan`` with the release's kind, so releases are
recorded like any apply and refused like one when another apply holds the lock.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from llmfleet.apply.executor import ApplyContext, apply_plan
from llmfleet.backends.base import Backend
from llmfleet.engines.base import Progress
from llmfleet.settings import Settings
from llmfleet.spec.loading import LoadedSpec
from llmfleet.spec.model import ResolvedEnvironment
from llmfleet.state.records import Revision, RevisionKind
from llmfleet.state.store import StateStore

PRODUCTION = "production"
STAGING = "staging"


@dataclass
class ReleaseContext:
    """Built once per command by the CLI (or a test) and passed down."""

    loaded: LoadedSpec
    store: StateStore
    backend_for: Callable[[str], Backend]
    """the ``Backend`` an environment runs on (staging may run elsewhere than production)"""
    settings: Settings
    spec_dir: Path
    user: str
    progress: Progress = field(default=lambda line: None)

    @property
    def reports_dir(self) -> Path:
        return self.settings.home / "reports"

    def with_loaded(self, loaded: LoadedSpec) -> ReleaseContext:
        """The same context over another spec (an upgrade's candidate, held in memory)."""
        return replace(self, loaded=loaded)


def apply_environment(
    ctx: ReleaseContext,
    desired: ResolvedEnvironment,
    *,
    kind: RevisionKind,
    message: str,
    parent_serial: int | None = None,
    spec_hash: str | None = None,
) -> Revision:
    """Plan ``desired`` against what runs and apply it, recorded as ``kind``."""
    latest = ctx.store.latest_revision(desired.name)
    services = latest.spec.get("services", {}) if latest else {}
    backend = ctx.backend_for(desired.name)
    plan = backend.plan(  # recorded as `plan` records them: a scale change is no drift
        desired,
        serial=ctx.store.current_serial(desired.name),
        spec_hash=spec_hash or ctx.loaded.resolved.spec_hash(),
        recorded_services=frozenset(services),
        recorded_replicas={name: int(s.get("replicas", 0)) for name, s in services.items()},
    )
    return apply_plan(plan, desired, _apply_context(ctx, backend, kind, message, parent_serial))


def destroy_environment(ctx: ReleaseContext, environment: str, *, message: str) -> Revision | None:
    """Tear ``environment`` down; None when nothing ran there."""
    backend = ctx.backend_for(environment)
    actual = backend.actual(environment)
    if not actual.replicas and actual.gateway is None and not actual.services:
        return None
    plan = backend.plan_destroy(environment, serial=ctx.store.current_serial(environment))
    gateway = ctx.loaded.resolved.environments.get(environment)
    empty = ResolvedEnvironment(
        name=environment,
        gateway=gateway.gateway
        if gateway
        else ctx.loaded.resolved.environments[PRODUCTION].gateway,
        services={},
    )
    return apply_plan(plan, empty, _apply_context(ctx, backend, "destroy", message, None))


def _apply_context(
    ctx: ReleaseContext,
    backend: Backend,
    kind: RevisionKind,
    message: str,
    parent_serial: int | None,
) -> ApplyContext:
    return ApplyContext(
        backend=backend,
        store=ctx.store,
        settings=ctx.settings,
        spec_dir=ctx.spec_dir,
        state_url=ctx.loaded.resolved.state,
        user=ctx.user,
        message=message,
        kind=kind,
        parent_serial=parent_serial,
        progress=ctx.progress,
        spec_file=ctx.loaded.path,
    )
