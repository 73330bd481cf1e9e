"""Cost series of the fleet endpoint, and token rates from the engines' counters; pure.

``llmfleet_cost_usd_per_hour{environment,service}`` is what the replicas that
run cost (each at its hardware's price, from the ``costs:`` the last apply
pushed); ``llmfleet_cost_usd_per_million_tokens{environment,service,direction}``
is that price over the tokens the replicas served on average since they
started (the engines' counters over their uptime), so an idle fleet shows a
high price and one at idle shows none (a price per nothing is not a number).
The currency in the names is the spec's ``costs.currency`` (``usd`` by default).

``live_rates`` is the same average for ``llmfleet costs``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError as PydanticValidationError

from llmfleet.costs.catalogue import load_catalogue
from llmfleet.costs.formulas import per_million
from llmfleet.costs.prices import PriceBook, ReplicaPrice, price_replica
from llmfleet.costs.report import LiveRate
from llmfleet.observe.exposition import Sample
from llmfleet.spec.costs import CostsSpec
from llmfleet.spec.resources import Resources

OUTPUT = "llmfleet_generation_tokens_total"
INPUT = "llmfleet_prompt_tokens_total"
UPTIME = "llmfleet_replica_uptime_seconds"


@dataclass(frozen=True)
class EnvironmentPrices:
    """What one replica of each service of an environment costs per hour."""

    currency: str
    per_replica_hour: Mapping[str, float]


def environment_prices(
    costs: Mapping[str, Any] | None, services: Mapping[str, Any]
) -> EnvironmentPrices | None:
    """Prices from the JSON an apply pushed; None when there are none or they do not parse."""
    if costs is None:
        return None
    try:
        book = PriceBook(CostsSpec.model_validate(costs), load_catalogue())
    except PydanticValidationError:
        return None
    prices = {}
    for name, body in services.items():
        try:
            resources = Resources.model_validate(body.get("resources") or {})
        except (PydanticValidationError, AttributeError):
            continue
        found = price_replica(resources, book)
        if isinstance(found, ReplicaPrice):
            prices[name] = found.per_hour
    return EnvironmentPrices(book.currency, prices)


def _per_replica(samples: Iterable[Sample], name: str) -> dict[tuple[str, str, str], float]:
    out: dict[tuple[str, str, str], float] = defaultdict(float)
    for s in samples:
        if s.name == name:
            labels = dict(s.labels)
            key = (
                labels.get("environment", ""),
                labels.get("service", ""),
                labels.get("replica", ""),
            )
            out[key] += s.value
    return out


def live_rates(samples: Iterable[Sample]) -> dict[tuple[str, str], LiveRate]:
    """Per (environment, service): tokens per second since each replica became ready."""
    samples = list(samples)
    uptime = _per_replica(samples, UPTIME)
    output, prompt = _per_replica(samples, OUTPUT), _per_replica(samples, INPUT)
    sums: dict[tuple[str, str], list[float]] = {}
    for key, seconds in uptime.items():
        if seconds <= 0 or key not in output:
            continue
        rate = sums.setdefault(key[:2], [0.0, 0.0, seconds])
        rate[0] += output[key] / seconds
        rate[1] += prompt.get(key, 0.0) / seconds
        rate[2] = min(rate[2], seconds)
    return {key: LiveRate(out, inp, secs) for key, (out, inp, secs) in sums.items()}


def running_replicas(samples: Iterable[Sample]) -> dict[tuple[str, str], int]:
    """Per (environment, service): replicas in a state that holds hardware (not stopped)."""
    counts: dict[tuple[str, str], int] = defaultdict(int)
    for s in samples:
        if s.name == "llmfleet_replica_state" and s.value == 1:
            labels = dict(s.labels)
            if labels.get("state") != "stopped":
                counts[(labels.get("environment", ""), labels.get("service", ""))] += 1
    return dict(counts)


def cost_samples(samples: list[Sample], prices: Mapping[str, EnvironmentPrices]) -> list[Sample]:
    """The cost series for the replicas in ``samples``; see the module doc."""
    replicas = running_replicas(samples)
    rates = live_rates(samples)
    out: list[Sample] = []
    for environment, env_prices in sorted(prices.items()):
        unit = env_prices.currency.lower()
        hourly_name = f"llmfleet_cost_{unit}_per_hour"
        mtok_name = f"llmfleet_cost_{unit}_per_million_tokens"
        for service, per_replica in sorted(env_prices.per_replica_hour.items()):
            count = replicas.get((environment, service), 0)
            labels = (("environment", environment), ("service", service))
            per_hour = per_replica * count
            out.append(Sample(hourly_name, "gauge", hourly_name, labels, per_hour))
            rate = rates.get((environment, service))
            if rate is None:
                continue
            for direction, tokens in (
                ("output", rate.output_tokens_per_s),
                ("input", rate.input_tokens_per_s),
            ):
                value = per_million(per_hour, tokens)
                if value is not None:
                    labelled = (*labels, ("direction", direction))
                    out.append(Sample(mtok_name, "gauge", mtok_name, labelled, value))
    return out
