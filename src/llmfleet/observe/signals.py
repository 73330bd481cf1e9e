"""What alert rules compare: per-service rates and quantiles over a window; pure.

A ``Window`` holds two scrapes (the oldest one still inside the window, and the
latest); rates and p95s come from the counter and histogram-bucket deltas
between them, as PromQL's ``rate`` and ``histogram_quantile`` would compute.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from llmfleet.observe.exposition import Labels, Sample

GATEWAY = "llmfleet_gateway_"


@dataclass(frozen=True)
class Window:
    old: Sequence[Sample]
    new: Sequence[Sample]


def _series(samples: Iterable[Sample], name: str, env: str, service: str) -> dict[Labels, float]:
    out: dict[Labels, float] = {}
    for s in samples:
        if s.name != name:
            continue
        labels = dict(s.labels)
        if labels.get("environment") == env and labels.get("service") == service:
            out[s.labels] = s.value
    return out


def counter_deltas(window: Window, name: str, env: str, service: str) -> dict[Labels, float]:
    """Per-series increase; a counter that went down was reset, its new value is the increase."""
    old = _series(window.old, name, env, service)
    new = _series(window.new, name, env, service)
    return {k: (v - old[k] if k in old and v >= old[k] else v) for k, v in new.items()}


def error_rate(window: Window, env: str, service: str) -> float | None:
    """Share of 5xx answers among requests in the window; None without requests."""
    deltas = counter_deltas(window, GATEWAY + "requests_total", env, service)
    total = sum(deltas.values())
    if total <= 0:
        return None
    errors = sum(v for k, v in deltas.items() if dict(k).get("status", "").startswith("5"))
    return errors / total


def histogram_p95(window: Window, family: str, env: str, service: str) -> float | None:
    """p95 of a histogram's observations in the window (linear within a bucket)."""
    return histogram_quantile(window, 0.95, family, env, service)


def histogram_quantile(
    window: Window, q: float, family: str, env: str, service: str
) -> float | None:
    """Quantile ``q`` of a histogram's observations in the window, over all replicas."""
    deltas = counter_deltas(window, family + "_bucket", env, service)
    buckets: dict[float, float] = {}
    for labels, value in deltas.items():
        le = dict(labels).get("le")
        if le is not None:
            bound = math.inf if le in ("+Inf", "Inf") else float(le)
            buckets[bound] = buckets.get(bound, 0.0) + value
    return quantile(q, sorted(buckets.items()))


def quantile(q: float, buckets: Sequence[tuple[float, float]]) -> float | None:
    """``histogram_quantile`` over cumulative (upper bound, count) pairs, sorted."""
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if math.isinf(bound):
                return lower_bound
            share = (rank - lower_count) / (count - lower_count) if count > lower_count else 1.0
            return lower_bound + (bound - lower_bound) * share
        lower_bound, lower_count = bound, count
    return lower_bound


def latency_p95(window: Window, which: str, env: str, service: str) -> float | None:
    """Gateway-measured p95 (what clients see), else the engine's own histogram."""
    value = histogram_p95(window, GATEWAY + which, env, service)
    return value if value is not None else histogram_p95(window, "llmfleet_" + which, env, service)


def queue_depth(window: Window, env: str, service: str) -> float:
    """Requests waiting now: in the gateway's queue plus in the engines' queues."""
    gateway = _series(window.new, GATEWAY + "queue_depth", env, service)
    engines = _series(window.new, "llmfleet_requests_waiting", env, service)
    return sum(gateway.values()) + sum(engines.values())
