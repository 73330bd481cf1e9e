"""The I/O of costs: measurements in and out of the state store, and what runs.

Everything else in ``llmfleet.costs`` is pure; this module reads the state store
(the environment's latest applied revision and the measurements) and writes the
measurements that ``llmfleet bench`` and ``llmfleet validate`` take.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date

from pydantic import ValidationError as PydanticValidationError

from llmfleet.costs.agents import Usage
from llmfleet.costs.catalogue import load_catalogue
from llmfleet.costs.measured import Summary, measurement_rows
from llmfleet.costs.prices import PriceBook
from llmfleet.costs.report import FleetCost, LiveRate, cost_environment
from llmfleet.spec.model import ResolvedEnvironment, ServiceSpec
from llmfleet.state.records import Measurement
from llmfleet.state.store import StateStore


def price_book(environment: ResolvedEnvironment) -> PriceBook:
    """The environment's ``costs:`` with llmfleet's catalogue behind it."""
    return PriceBook(environment.costs, load_catalogue())


@dataclass(frozen=True)
class Running:
    """What an environment runs, as its latest successful revision recorded it."""

    serial: int | None
    services: Mapping[str, ServiceSpec]
    note: str = ""


def running_services(store: StateStore, desired: ResolvedEnvironment) -> Running:
    """The services of the environment's latest applied revision; the spec's if none."""
    latest = store.latest_revision(desired.name)
    if latest is None or not latest.spec.get("services"):
        note = f"{desired.name} is not applied: priced as the spec describes it"
        return Running(None, desired.services, note)
    try:
        recorded = ResolvedEnvironment.model_validate(latest.spec)
    except PydanticValidationError:
        note = f"revision {latest.serial} cannot be read by this llmfleet: priced from the spec"
        return Running(latest.serial, desired.services, note)
    return Running(latest.serial, recorded.services)


def record_speed(
    store: StateStore,
    levels: Mapping[str, Summary],
    *,
    environment: str,
    service: str,
    spec: ServiceSpec,
    serial: int | None,
    source: str,
    user: str,
    scale: float = 1.0,
) -> list[Measurement]:
    """Record a speed run of ``service`` (as ``spec`` describes what ran) in the state."""
    rows = measurement_rows(
        levels,
        environment=environment,
        service=service,
        serial=serial,
        runtime_hash=spec.runtime_hash(),
        replicas=spec.replicas,
        source=source,
        scale=scale,
    )
    return store.record_measurements(rows, user=user)


def gather_costs(
    store: StateStore,
    desired: ResolvedEnvironment,
    *,
    live: Mapping[str, LiveRate] | None,
    today: date,
    agent_usage: Usage | None = None,
) -> tuple[FleetCost, Running]:
    """The costs of what ``desired``'s environment runs, priced with the spec's prices;
    ``agent_usage``: the gateway's token counters of its agents (``costs.agents``)."""
    running = running_services(store, desired)
    fleet = cost_environment(
        desired.name,
        running.services,
        book=price_book(desired),
        serial=running.serial,
        measurements=store.measurements(),
        live=live,
        today=today,
        agent_usage=agent_usage,
    )
    return fleet, running
