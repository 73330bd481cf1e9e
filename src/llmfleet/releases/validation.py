"""``llmfleet validate``: the candidate in staging, measured against production.

Flow: refuse if production is not applied -> tear down staging left by a run
that died -> record ``validation-started`` -> apply the candidate services to
staging (a candidate agent with the services it calls, and staging's indexes
filled by their pipelines: ``agent_staging``) -> run the suites on both
gateways -> judge -> write the reports -> record ``validation`` with the
staging revision -> tear staging down (in a
``finally``, so Ctrl-C and errors clean up too) unless asked to keep it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from llmfleet.errors import ReleaseError, StateError
from llmfleet.releases.agent_staging import fill_staging_indexes, with_dependencies
from llmfleet.releases.candidates import candidate_hash, only_services, pick_services
from llmfleet.releases.context import (
    PRODUCTION,
    STAGING,
    ReleaseContext,
    apply_environment,
    destroy_environment,
)
from llmfleet.spec.model import ResolvedEnvironment
from llmfleet.spec.validation import ValidationSpec
from llmfleet.validate.assess import (
    ServiceReport,
    SideCosts,
    Sides,
    Similarities,
    assess_service,
)
from llmfleet.validate.changes import service_changes
from llmfleet.validate.gate import Outcome, outcome_of
from llmfleet.validate.report import write_reports
from llmfleet.validate.suites import (
    AGENT_CHECKS_HINT,
    QualitySuite,
    agent_checks_of_model,
    load_suite,
)


@dataclass(frozen=True)
class ValidationResult:
    services: tuple[ServiceReport, ...]
    candidate_serial: int
    event_id: int
    json_path: Path
    html_path: Path

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.services)

    @property
    def outcome(self) -> Outcome:
        """fail when any check failed; inconclusive when the rest could not tell; pass."""
        return outcome_of([v for r in self.services for v in r.verdicts])


VALIDATION_KEY = "llmfleet-validation"  # the name of the suites' own API key


@dataclass(frozen=True)
class GatewayUrls:
    """Where the suites reach each side's gateway from this process."""

    staging: str
    production: str


def gateway_urls(
    ctx: ReleaseContext, staging: ResolvedEnvironment, production: ResolvedEnvironment
) -> GatewayUrls:
    """Asked of each side's backend before anything is deployed, so a cluster gateway this
    machine cannot reach is refused with its fix instead of after a staging rollout."""
    return GatewayUrls(
        staging=ctx.backend_for(STAGING).gateway_url_from_here(staging),
        production=ctx.backend_for(PRODUCTION).gateway_url_from_here(production),
    )


def run_validation(
    ctx: ReleaseContext, names: Sequence[str], *, keep: bool = False
) -> ValidationResult:
    """Validate the named services (all when none); see the module doc."""
    fleet = ctx.loaded.resolved
    if STAGING not in fleet.environments:
        raise ReleaseError(
            "the spec has no 'staging' environment to validate in",
            hint="add environments.staging with its own gateway port",
        )
    production = _require_production(ctx)
    chosen = pick_services(fleet.environments[PRODUCTION], names)
    deployed = with_dependencies(fleet.environments[STAGING], ctx.loaded.spec, chosen)
    similar = _similarity_services(ctx, production[0], chosen)
    suites = {n: _suite(ctx, _validation_of(ctx, n)) for n in chosen}
    _refuse_agent_checks_of_models(ctx, suites)
    urls = gateway_urls(ctx, fleet.environments[STAGING], production[0])
    clean_stale_staging(ctx)
    started = ctx.store.record_event(
        kind="validation-started",
        environment=STAGING,
        serial=None,
        payload={"services": chosen},
        user=ctx.user,
    )
    reached = [*deployed, *similar]
    key = _validation_key(ctx, fleet.environments[STAGING], production[0], reached)
    try:
        staging = only_services(fleet.environments[STAGING], deployed)
        needs = [n for n in deployed if n not in chosen]
        also = f", with what it needs: {', '.join(needs)}" if needs else ""
        ctx.progress(f"deploying the candidate ({', '.join(chosen)}) to staging{also}")
        revision = apply_environment(ctx, staging, kind="apply", message="validation candidate")
        fill_staging_indexes(ctx, staging, chosen, api_key=key)
        reports = asyncio.run(
            _assess_all(ctx, staging, production, chosen, suites, api_key=key, urls=urls)
        )
        _record_speeds(ctx, reports, staging, production, candidate_serial=revision.serial)
    finally:
        if key is not None:
            ctx.store.revoke_key(VALIDATION_KEY)
        if not keep:
            ctx.progress("tearing staging down")
            destroy_environment(ctx, STAGING, message="validation teardown")
    return _record(
        ctx, reports, serial=revision.serial, started_id=started.id, production_serial=production[1]
    )


def _validation_key(
    ctx: ReleaseContext,
    staging: ResolvedEnvironment,
    production: ResolvedEnvironment,
    chosen: Sequence[str],
) -> str | None:
    """A key for the suites when a chosen service requires one on either side: scoped to
    those services, without limits, revoked when the validation ends. Its secret lives in
    this process only; the state store keeps its hash, like every key's."""
    envs = (staging, production)
    if not any(n in e.services and e.services[n].auth.required for e in envs for n in chosen):
        return None
    with contextlib.suppress(StateError):
        ctx.store.revoke_key(VALIDATION_KEY)  # one left by a validation that was killed
    _key, secret = ctx.store.create_key(
        name=VALIDATION_KEY, services=list(chosen), rpm=None, tpm=None
    )
    return secret


def _similarity_services(
    ctx: ReleaseContext, production: ResolvedEnvironment, chosen: Sequence[str]
) -> list[str]:
    """The embedding services the chosen services' validations name (``similarity:``),
    each running in production, where the suites reach them; refused before anything
    is deployed when one is not."""
    named = {v.similarity for n in chosen if (v := _validation_of(ctx, n)).similarity}
    for name in sorted(named):
        if name not in production.services:
            raise ReleaseError(
                f"validation.similarity names '{name}', which production does not run",
                hint="apply a spec with that embedding service first, or leave similarity "
                "out to use the reference model",
            )
    return sorted(named)


def _require_production(ctx: ReleaseContext) -> tuple[ResolvedEnvironment, int]:
    latest = ctx.store.latest_revision(PRODUCTION)
    actual = ctx.backend_for(PRODUCTION).actual(PRODUCTION)
    if latest is None or actual.gateway is None or not latest.spec.get("services"):
        raise ReleaseError(
            "production is not running, so there is nothing to compare the candidate with",
            hint="run `llmfleet apply` first (production is the baseline of every validation)",
        )
    return ResolvedEnvironment.model_validate(latest.spec), latest.serial


def _validation_of(ctx: ReleaseContext, name: str) -> ValidationSpec:
    service = ctx.loaded.resolved.environments[PRODUCTION].services[name]
    return service.validation or ValidationSpec()


def _suite(ctx: ReleaseContext, validation: ValidationSpec) -> QualitySuite | None:
    if validation.quality is None:
        return None
    services = ctx.loaded.resolved.environments[PRODUCTION].services
    return load_suite(ctx.spec_dir / validation.quality, services=services)


def _refuse_agent_checks_of_models(
    ctx: ReleaseContext, suites: dict[str, QualitySuite | None]
) -> None:
    """A model's suite with retrieved: or called: checks could never pass: said now,
    not as a failed gate after a staging rollout."""
    services = ctx.loaded.resolved.environments[PRODUCTION].services
    for name, suite in suites.items():
        if suite is None or services[name].agent is not None:
            continue
        problem = agent_checks_of_model(name, suite)
        if problem is not None:
            raise ReleaseError(problem, hint=AGENT_CHECKS_HINT)


def clean_stale_staging(ctx: ReleaseContext) -> bool:
    """Destroy staging replicas left by a validation that died; True when any were."""
    actual = ctx.backend_for(STAGING).actual(STAGING)
    if not actual.replicas and actual.gateway is None:
        return False
    ctx.progress("staging still runs replicas of an earlier validation; tearing them down")
    destroy_environment(ctx, STAGING, message="stale validation cleanup")
    return True


async def _assess_all(
    ctx: ReleaseContext,
    staging: ResolvedEnvironment,
    production: tuple[ResolvedEnvironment, int],
    chosen: Sequence[str],
    suites: dict[str, QualitySuite | None],
    *,
    api_key: str | None,
    urls: GatewayUrls,
) -> list[ServiceReport]:
    similarities = Similarities(production_url=urls.production, api_key=api_key)
    try:
        return await _assess_each(
            ctx,
            staging,
            production,
            chosen,
            suites,
            api_key=api_key,
            urls=urls,
            similarities=similarities,
        )
    finally:
        similarities.close()


async def _assess_each(
    ctx: ReleaseContext,
    staging: ResolvedEnvironment,
    production: tuple[ResolvedEnvironment, int],
    chosen: Sequence[str],
    suites: dict[str, QualitySuite | None],
    *,
    api_key: str | None,
    urls: GatewayUrls,
    similarities: Similarities,
) -> list[ServiceReport]:
    prod_env = production[0]
    reports = []
    for name in chosen:
        ctx.progress(f"running the suites of {name} on staging and production")
        in_production = name in prod_env.services
        sides = Sides(
            urls.staging,
            urls.production if in_production else None,
            api_key=api_key,
            candidate_replicas=staging.services[name].replicas,
            production_replicas=prod_env.services[name].replicas if in_production else 1,
            costs=_side_costs(ctx, staging, prod_env, name),
        )
        target = ctx.loaded.resolved.environments[PRODUCTION].services[name]
        similarity, source = similarities.pick(_validation_of(ctx, name))
        reports.append(
            await assess_service(
                name,
                candidate_hash=candidate_hash(target),
                validation=_validation_of(ctx, name),
                suite=suites[name],
                sides=sides,
                similarity=similarity,
                changes=service_changes(prod_env.services.get(name), target),
                progress=ctx.progress,
                similarity_source=source,
            )
        )
    return reports


def _side_costs(
    ctx: ReleaseContext, staging: ResolvedEnvironment, production: ResolvedEnvironment, name: str
) -> SideCosts:
    """Each side's replicas at its environment's prices, in production's currency (a side
    priced in another currency is left unpriced: currencies are never mixed)."""
    from llmfleet.costs.gather import price_book
    from llmfleet.costs.prices import ReplicaPrice, price_replica

    envs = ctx.loaded.resolved.environments
    currency = envs[PRODUCTION].costs.currency

    def hourly(env_name: str, running: ResolvedEnvironment) -> float | None:
        service = running.services.get(name)
        if service is None or envs[env_name].costs.currency != currency:
            return None
        found = price_replica(service.resources, price_book(envs[env_name]))
        return found.per_hour * service.replicas if isinstance(found, ReplicaPrice) else None

    return SideCosts(currency, hourly(STAGING, staging), hourly(PRODUCTION, production))


def _record_speeds(
    ctx: ReleaseContext,
    reports: list[ServiceReport],
    staging: ResolvedEnvironment,
    production: tuple[ResolvedEnvironment, int],
    *,
    candidate_serial: int,
) -> None:
    """Both sides' throughput as measurements, so `llmfleet costs` prices with them (the
    candidate's too: once promoted, production runs what was measured)."""
    from llmfleet.costs.gather import record_speed

    prod_env, prod_serial = production
    for report in reports:
        candidate = staging.services[report.service]
        record_speed(
            ctx.store, report.candidate_speed, environment=STAGING, service=report.service,
            spec=candidate, serial=candidate_serial, source="validation", user=ctx.user,
        )  # fmt: skip
        running = prod_env.services.get(report.service)
        if running is not None and report.production_speed:
            record_speed(
                ctx.store, report.production_speed, environment=PRODUCTION,
                service=report.service, spec=running, serial=prod_serial, source="validation",
                user=ctx.user, scale=running.replicas / candidate.replicas,
            )  # fmt: skip


def _record(
    ctx: ReleaseContext,
    reports: list[ServiceReport],
    *,
    serial: int,
    started_id: int,
    production_serial: int,
) -> ValidationResult:
    now = datetime.now(UTC)
    names = [r.service for r in reports]
    meta = {
        "services": names,
        "started_at": now.isoformat(timespec="seconds"),
        "candidate_serial": serial,
        "production_serial": production_serial,
    }
    folder = ctx.reports_dir / f"{now:%Y%m%dT%H%M%S}-{'-'.join(names)}"
    json_path, html_path = write_reports(folder, reports, meta)
    payload = {
        "started_event": started_id,
        "passed": all(r.passed for r in reports),
        "outcome": outcome_of([v for r in reports for v in r.verdicts]).value,
        "services": {
            r.service: {
                "candidate_hash": r.candidate_hash,
                "passed": r.passed,
                "outcome": r.outcome.value,
                "failed_checks": [v.check for v in r.verdicts if not v.passed],
                "changes": [c.to_json() for c in r.changes],
            }
            for r in reports
        },
        "production_serial": production_serial,
        "report": {"json": str(json_path), "html": str(html_path)},
    }
    event = ctx.store.record_event(
        kind="validation", environment=STAGING, serial=serial, payload=payload, user=ctx.user
    )
    return ValidationResult(tuple(reports), serial, event.id, json_path, html_path)
