"""What an environment costs, per service and in total: the figures of ``llmfleet costs``; pure.

Per service: $/hour and $/month of what runs (replicas x resources x price); $/1M
output and input tokens at the throughput llmfleet measured on that runtime;
the effective $/1M at the live token rate and the idle share (an idle replica
still costs money); and the other basis (own against cloud) with the break-even
utilisation and the months to pay back. Every figure names the price and the
measurement it came from. A figure that cannot be computed is ``None`` with a
note that says why and what to run, never a division by zero.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from llmfleet.costs import formulas
from llmfleet.costs.agents import AgentCost, Usage, cost_agents
from llmfleet.costs.measured import Pick, pick_measurement
from llmfleet.costs.prices import (
    MissingPrice,
    PriceBook,
    PriceRef,
    ReplicaPrice,
    other_basis,
    price_replica,
    stale_prices,
)
from llmfleet.spec.costs import RunsOn
from llmfleet.spec.model import ServiceSpec
from llmfleet.state.records import Measurement


@dataclass(frozen=True, slots=True)
class LiveRate:
    """A service's token rate from the engines' counters, averaged since its replicas started."""

    output_tokens_per_s: float
    input_tokens_per_s: float
    seconds: float
    """the shortest uptime among the replicas: how much time the average covers"""


@dataclass(frozen=True, slots=True)
class Comparison:
    """The basis that does not run (own against cloud, or the reverse), for the same service."""

    basis: str
    price: ReplicaPrice | None
    missing: MissingPrice | None
    per_hour: float | None
    per_month: float | None
    per_mtok_output: float | None
    break_even_utilisation: float | None
    payback_months: float | None


@dataclass(frozen=True, slots=True)
class ServiceCost:
    service: str
    replicas: int
    concurrency: int
    price: ReplicaPrice | None
    missing: MissingPrice | None
    per_hour: float | None
    per_month: float | None
    pick: Pick | None
    per_mtok_output: float | None
    per_mtok_input: float | None
    measured_note: str
    live: LiveRate | None
    utilisation: float | None
    idle_share: float | None
    effective_per_mtok_output: float | None
    live_note: str
    comparison: Comparison | None


@dataclass(frozen=True)
class FleetCost:
    environment: str
    currency: str
    hours_per_month: float
    serial: int | None
    services: tuple[ServiceCost, ...]
    warnings: tuple[str, ...] = field(default=())
    agents: tuple[AgentCost, ...] = field(default=())
    """each agent's calls to the models, priced (``costs.agents``)"""

    @property
    def per_hour(self) -> float:
        return sum(s.per_hour or 0.0 for s in self.services)

    @property
    def per_month(self) -> float:
        return sum(s.per_month or 0.0 for s in self.services)

    @property
    def missing(self) -> tuple[ServiceCost, ...]:
        return tuple(s for s in self.services if s.missing is not None)


def cost_environment(
    environment: str,
    services: Mapping[str, ServiceSpec],
    *,
    book: PriceBook,
    serial: int | None,
    measurements: Iterable[Measurement],
    live: Mapping[str, LiveRate] | None,
    today: date,
    agent_usage: Usage | None = None,
) -> FleetCost:
    """Every service of ``environment`` costed, then its agents' calls; ``live`` and
    ``agent_usage`` None mean no live counters."""
    by_service: dict[str, list[Measurement]] = {}
    for m in measurements:
        by_service.setdefault(m.service, []).append(m)
    costed = tuple(
        cost_service(
            name,
            services[name],
            environment=environment,
            book=book,
            serial=serial,
            measurements=by_service.get(name, ()),
            live=None if live is None else live.get(name),
            live_known=live is not None,
        )
        for name in sorted(services)
    )
    refs: list[PriceRef] = [s.price.ref for s in costed if s.price is not None]
    warnings = stale_prices(refs, today=today, max_age_days=book.spec.stale_after_days)
    warnings += [
        f"{s.service}: no price for {s.missing.what}; {s.missing.hint}" for s in costed if s.missing
    ]
    agents = cost_agents(
        [name for name, spec in services.items() if spec.agent is not None],
        environment=environment,
        costed={s.service: s for s in costed},
        usage=agent_usage,
    )
    return FleetCost(
        environment, book.currency, book.hours_per_month, serial, costed, tuple(warnings), agents
    )


def cost_service(
    name: str,
    service: ServiceSpec,
    *,
    environment: str,
    book: PriceBook,
    serial: int | None,
    measurements: Iterable[Measurement],
    live: LiveRate | None,
    live_known: bool = True,
) -> ServiceCost:
    """One service's figures; see the module doc."""
    concurrency = service.slots * service.replicas
    found = price_replica(service.resources, book)
    price = found if isinstance(found, ReplicaPrice) else None
    per_hour = price.per_hour * service.replicas if price else None
    pick = pick_measurement(
        measurements,
        environment=environment,
        serial=serial,
        runtime_hash=service.runtime_hash(),
        concurrency=concurrency,
    )
    out, inp = _per_mtok(price, pick)
    used, effective, live_note = _live(per_hour, pick, live, service.replicas, live_known)
    return ServiceCost(
        service=name,
        replicas=service.replicas,
        concurrency=concurrency,
        price=price,
        missing=found if isinstance(found, MissingPrice) else None,
        per_hour=per_hour,
        per_month=None if per_hour is None else formulas.per_month(per_hour, book.hours_per_month),
        pick=pick,
        per_mtok_output=out,
        per_mtok_input=inp,
        measured_note=_measured_note(name, pick, inp),
        live=live,
        utilisation=used,
        idle_share=formulas.idle_share(used),
        effective_per_mtok_output=effective,
        live_note=live_note,
        comparison=_compare(service, book, price, pick),
    )


def _measured_cost(price: ReplicaPrice, pick: Pick) -> float:
    """The hourly price of what was measured: the replicas behind the gateway then."""
    return price.per_hour * pick.measurement.replicas


def _per_mtok(price: ReplicaPrice | None, pick: Pick | None) -> tuple[float | None, float | None]:
    if price is None or pick is None:
        return None, None
    hourly = _measured_cost(price, pick)
    m = pick.measurement
    return formulas.per_million(hourly, m.output_tokens_per_s), formulas.per_million(
        hourly, m.input_tokens_per_s
    )


def _measured_note(name: str, pick: Pick | None, per_mtok_input: float | None) -> str:
    if pick is None:
        return f"not measured; run llmfleet bench {name}"
    if per_mtok_input is None:
        return "input tokens not measured (the engine reported no usage)"
    return ""


def _live(
    per_hour: float | None,
    pick: Pick | None,
    live: LiveRate | None,
    replicas: int,
    live_known: bool,
) -> tuple[float | None, float | None, str]:
    """Utilisation against the measured capacity, and $/1M at the live rate."""
    if not live_known:
        return None, None, "no live counters (the local runtime is not running)"
    if live is None:
        return None, None, "no live counters for this service (no replica reports them)"
    capacity = None
    if pick is not None:
        capacity = pick.measurement.output_tokens_per_s * replicas / pick.measurement.replicas
    used = formulas.utilisation(live.output_tokens_per_s, capacity)
    effective = (
        None if per_hour is None else formulas.per_million(per_hour, live.output_tokens_per_s)
    )
    note = "" if live.output_tokens_per_s > 0 else "idle: no tokens since the replicas started"
    return used, effective, note


def _compare(
    service: ServiceSpec, book: PriceBook, price: ReplicaPrice | None, pick: Pick | None
) -> Comparison | None:
    """The other basis for a GPU service, with break-even and payback when both are priced."""
    if service.resources.gpus == 0:
        return None
    basis = other_basis(book)
    found = price_replica(service.resources, book, basis=basis)
    other = found if isinstance(found, ReplicaPrice) else None
    per_hour = other.per_hour * service.replicas if other else None
    cloud, own = (price, other) if basis is RunsOn.OWN else (other, price)
    even = payback = None
    if cloud is not None and own is not None:
        even = formulas.break_even_utilisation(own.unit_price, cloud.unit_price)
        payback = formulas.payback_months(
            purchase_per_gpu=own.purchase_per_gpu or 0.0,
            cloud_per_gpu_hour=cloud.unit_price,
            own_running_per_gpu_hour=own.own_running_per_gpu or 0.0,
            hours_per_month=book.hours_per_month,
        )
    per_mtok = None
    if other is not None and pick is not None:
        per_mtok = formulas.per_million(
            _measured_cost(other, pick), pick.measurement.output_tokens_per_s
        )
    return Comparison(
        basis=str(basis),
        price=other,
        missing=found if isinstance(found, MissingPrice) else None,
        per_hour=per_hour,
        per_month=None if per_hour is None else formulas.per_month(per_hour, book.hours_per_month),
        per_mtok_output=per_mtok,
        break_even_utilisation=even,
        payback_months=payback,
    )


def price_json(price: ReplicaPrice | None) -> dict[str, Any] | None:
    if price is None:
        return None
    return {
        "per_replica_hour": price.per_hour,
        "unit_price": price.unit_price,
        "units": price.units,
        **price.ref.to_json(),
    }


def service_json(s: ServiceCost) -> dict[str, Any]:
    """One service in ``costs --json``; the field names are stable."""
    c = s.comparison
    return {
        "service": s.service,
        "replicas": s.replicas,
        "concurrency": s.concurrency,
        "per_hour": s.per_hour,
        "per_month": s.per_month,
        "price": price_json(s.price),
        "missing_price": None
        if s.missing is None
        else {"what": s.missing.what, "hint": s.missing.hint},
        "per_million_output_tokens": s.per_mtok_output,
        "per_million_input_tokens": s.per_mtok_input,
        "measurement": None if s.pick is None else s.pick.to_json(),
        "measured_note": s.measured_note or None,
        "live": None
        if s.live is None
        else {
            "output_tokens_per_s": s.live.output_tokens_per_s,
            "input_tokens_per_s": s.live.input_tokens_per_s,
            "seconds": s.live.seconds,
        },
        "utilisation": s.utilisation,
        "idle_share": s.idle_share,
        "effective_per_million_output_tokens": s.effective_per_mtok_output,
        "live_note": s.live_note or None,
        "comparison": None
        if c is None
        else {
            "basis": c.basis,
            "per_hour": c.per_hour,
            "per_month": c.per_month,
            "per_million_output_tokens": c.per_mtok_output,
            "price": price_json(c.price),
            "missing_price": None
            if c.missing is None
            else {"what": c.missing.what, "hint": c.missing.hint},
            "break_even_utilisation": c.break_even_utilisation,
            "payback_months": c.payback_months,
        },
    }


def fleet_json(fleet: FleetCost) -> dict[str, Any]:
    """``llmfleet costs --json``; the field names are stable."""
    return {
        "environment": fleet.environment,
        "currency": fleet.currency,
        "hours_per_month": fleet.hours_per_month,
        "serial": fleet.serial,
        "per_hour": fleet.per_hour,
        "per_month": fleet.per_month,
        "services": [service_json(s) for s in fleet.services],
        "unpriced_services": [s.service for s in fleet.missing],
        "agents": [a.to_json() for a in fleet.agents],
        "warnings": list(fleet.warnings),
    }
