"""What ``llmfleet top`` shows, computed from two scrapes of the fleet endpoint; pure.

Rates and quantiles cover the time between the two scrapes, so the view shows
what happens now, not averages since the start.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from llmfleet.observe import signals
from llmfleet.observe.exposition import Labels, Sample

GW = "llmfleet_gateway_"


@dataclass(frozen=True)
class ServiceRow:
    environment: str
    service: str
    rps: float
    ttft_p50: float | None
    ttft_p95: float | None
    tokens_per_s: float
    queue: float
    in_flight: float
    ready: int
    replicas: int


@dataclass(frozen=True)
class ReplicaRow:
    replica: str
    service: str
    state: str
    restarts: int
    uptime_s: float
    running: float
    waiting: float


@dataclass(frozen=True)
class GpuRow:
    gpu: str
    name: str
    utilization: float
    temperature_c: float
    memory_used: float
    memory_total: float
    healthy: bool


@dataclass(frozen=True)
class TopView:
    services: tuple[ServiceRow, ...]
    replicas: tuple[ReplicaRow, ...]
    gpus: tuple[GpuRow, ...]
    gpus_available: bool
    alerts_firing: int


def _value(samples: Sequence[Sample], name: str, **match: str) -> dict[Labels, float]:
    return {
        s.labels: s.value
        for s in samples
        if s.name == name and all(dict(s.labels).get(k) == v for k, v in match.items())
    }


def _rate(window: signals.Window, name: str, env: str, service: str, seconds: float) -> float:
    if seconds <= 0:
        return 0.0
    return sum(signals.counter_deltas(window, name, env, service).values()) / seconds


def _quantile(window: signals.Window, q: float, env: str, service: str) -> float | None:
    for family in (GW + "time_to_first_token_seconds", "llmfleet_time_to_first_token_seconds"):
        found = signals.histogram_quantile(window, q, family, env, service)
        if found is not None:
            return found
    return None


def _service_row(window: signals.Window, env: str, service: str, seconds: float) -> ServiceRow:
    new = window.new
    states = _value(new, "llmfleet_replica_state", environment=env, service=service)
    ready = sum(int(v) for k, v in states.items() if dict(k)["state"] == "ready")
    replicas = len({dict(k)["replica"] for k in states})
    tokens = _rate(window, GW + "completion_tokens_total", env, service, seconds) or _rate(
        window, "llmfleet_generation_tokens_total", env, service, seconds
    )
    gateway_flight = sum(_value(new, GW + "in_flight", environment=env, service=service).values())
    engine_flight = sum(
        _value(new, "llmfleet_requests_running", environment=env, service=service).values()
    )
    return ServiceRow(
        environment=env,
        service=service,
        rps=_rate(window, GW + "requests_total", env, service, seconds),
        ttft_p50=_quantile(window, 0.5, env, service),
        ttft_p95=_quantile(window, 0.95, env, service),
        tokens_per_s=tokens,
        queue=signals.queue_depth(window, env, service),
        in_flight=gateway_flight or engine_flight,
        ready=ready,
        replicas=replicas,
    )


def _replica_rows(samples: Sequence[Sample]) -> tuple[ReplicaRow, ...]:
    rows = []
    for labels, value in _value(samples, "llmfleet_replica_state").items():
        info = dict(labels)
        if value != 1.0:
            continue
        rid = info["replica"]
        restarts = _value(samples, "llmfleet_replica_restarts_total", replica=rid)
        uptime = _value(samples, "llmfleet_replica_uptime_seconds", replica=rid)
        running = _value(samples, "llmfleet_requests_running", replica=rid)
        waiting = _value(samples, "llmfleet_requests_waiting", replica=rid)
        rows.append(
            ReplicaRow(
                rid,
                info["service"],
                info["state"],
                int(sum(restarts.values())),
                sum(uptime.values()),
                sum(running.values()),
                sum(waiting.values()),
            )
        )
    return tuple(sorted(rows, key=lambda r: (r.service, r.replica)))


def _gpu_rows(samples: Sequence[Sample]) -> tuple[GpuRow, ...]:
    rows = []
    for labels, temperature in _value(samples, "llmfleet_gpu_temperature_celsius").items():
        info = dict(labels)
        one = {"gpu": info["gpu"]}

        def first(name: str, match: dict[str, str] = one) -> float:
            return next(iter(_value(samples, name, **match).values()), 0.0)

        rows.append(
            GpuRow(
                info["gpu"],
                info.get("name", ""),
                first("llmfleet_gpu_utilization_ratio"),
                temperature,
                first("llmfleet_gpu_memory_used_bytes"),
                first("llmfleet_gpu_memory_total_bytes"),
                first("llmfleet_gpu_healthy") == 1.0,
            )
        )
    return tuple(rows)


def top_view(old: Sequence[Sample], new: Sequence[Sample], *, seconds: float) -> TopView:
    """The view between two scrapes ``seconds`` apart."""
    window = signals.Window(old=old, new=new)
    keys = sorted(
        {
            (dict(s.labels).get("environment", ""), dict(s.labels)["service"])
            for s in new
            if s.name == "llmfleet_replica_state"
        }
    )
    firing = _value(new, "llmfleet_alerts", alertstate="firing")
    available = _value(new, "llmfleet_gpus_available")
    return TopView(
        services=tuple(_service_row(window, env, svc, seconds) for env, svc in keys),
        replicas=_replica_rows(new),
        gpus=_gpu_rows(new),
        gpus_available=any(v == 1.0 for v in available.values()),
        alerts_firing=len(firing),
    )
