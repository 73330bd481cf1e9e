"""Alert rules of the spec evaluated on this machine; pure, with time passed in.

``active_conditions`` says which alert instances hold right now (an instance is
a rule for one service, or for one replica of it); ``AlertEvaluator.step`` moves
each instance through::

    inactive --holds--> pending --held for `for:`--> firing --stops holding--> resolved

and returns the transitions worth notifying (firing and resolved). A pending
alert that stops holding is forgotten without a word, as in Prometheus.
"""

from __future__ import annotations

import collections
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from llmfleet.backends.base import ReplicaState, ReplicaStatus
from llmfleet.observe import signals
from llmfleet.spec.observability import AlertKind, AlertRule, Slo

DOWN_STATES = frozenset({ReplicaState.UNHEALTHY, ReplicaState.BACKOFF, ReplicaState.CRASH_LOOP})


@dataclass(frozen=True)
class ServiceRules:
    environment: str
    service: str
    rules: tuple[AlertRule, ...]
    slo: Slo = field(default_factory=Slo)


@dataclass(frozen=True)
class Condition:
    """An alert instance that holds now, with the value that made it hold."""

    rule: AlertRule
    labels: tuple[tuple[str, str], ...]
    value: float
    summary: str

    @property
    def key(self) -> tuple[tuple[str, str], ...]:
        return self.labels


@dataclass(frozen=True)
class Alert:
    """One alert instance's state; ``ends_at`` is set once resolved."""

    labels: tuple[tuple[str, str], ...]
    annotations: tuple[tuple[str, str], ...]
    state: str  # pending | firing | resolved
    active_since: float
    for_s: float
    value: float
    fired_at: float | None = None
    ends_at: float | None = None

    @property
    def name(self) -> str:
        return dict(self.labels)["alertname"]

    def to_json(self) -> dict[str, object]:
        return {
            "labels": dict(self.labels),
            "annotations": dict(self.annotations),
            "state": self.state,
            "active_since": self.active_since,
            "for_s": self.for_s,
            "value": self.value,
            "fired_at": self.fired_at,
            "ends_at": self.ends_at,
        }


def _labels(rule: AlertRule, env: str, service: str, **extra: str) -> tuple[tuple[str, str], ...]:
    base = {
        "alertname": rule.alert_name,
        "severity": str(rule.severity),
        "environment": env,
        "service": service,
        **extra,
    }
    return tuple(sorted(base.items()))


def _replica_conditions(
    rule: AlertRule, group: ServiceRules, replicas: Sequence[ReplicaStatus]
) -> list[Condition]:
    states = {ReplicaState.CRASH_LOOP} if rule.kind is AlertKind.CRASH_LOOP else DOWN_STATES
    return [
        Condition(
            rule,
            _labels(rule, group.environment, group.service, replica=r.replica_id),
            float(r.restarts),
            f"replica {r.replica_id} is {r.state}",
        )
        for r in replicas
        if r.environment == group.environment
        and r.service == group.service
        and (r.state in states or (rule.kind is AlertKind.REPLICA_DOWN and _restarting(r)))
    ]


def _restarting(replica: ReplicaStatus) -> bool:
    """Back up after a crash but not serving yet: still down for its clients."""
    return replica.state is ReplicaState.STARTING and replica.restarts > 0


def _threshold(rule: AlertRule, slo: Slo) -> float | None:
    if rule.threshold is not None:
        return rule.threshold
    return {
        AlertKind.TTFT_P95: slo.ttft_p95_s,
        AlertKind.ITL_P95: slo.itl_p95_s,
        AlertKind.ERROR_RATE: slo.error_rate,
    }.get(rule.kind)


def _measured(rule: AlertRule, group: ServiceRules, window: signals.Window) -> float | None:
    env, service = group.environment, group.service
    if rule.kind is AlertKind.ERROR_RATE:
        return signals.error_rate(window, env, service)
    if rule.kind is AlertKind.TTFT_P95:
        return signals.latency_p95(window, "time_to_first_token_seconds", env, service)
    if rule.kind is AlertKind.ITL_P95:
        return signals.latency_p95(window, "inter_token_latency_seconds", env, service)
    return signals.queue_depth(window, env, service)


def active_conditions(
    groups: Iterable[ServiceRules],
    *,
    replicas: Sequence[ReplicaStatus],
    window: signals.Window,
    unhealthy_gpus: Mapping[str, str],
) -> list[Condition]:
    """Every alert instance that holds now; pure. ``unhealthy_gpus``: gpu id -> reason."""
    out: list[Condition] = []
    for group in groups:
        for rule in group.rules:
            out.extend(_rule_conditions(rule, group, replicas, window, unhealthy_gpus))
    return out


def _rule_conditions(
    rule: AlertRule,
    group: ServiceRules,
    replicas: Sequence[ReplicaStatus],
    window: signals.Window,
    gpus: Mapping[str, str],
) -> list[Condition]:
    env, service = group.environment, group.service
    if rule.kind in (AlertKind.REPLICA_DOWN, AlertKind.CRASH_LOOP):
        return _replica_conditions(rule, group, replicas)
    if rule.kind is AlertKind.GPU_UNHEALTHY:
        return [
            Condition(rule, _labels(rule, env, service, gpu=gpu), 1.0, f"GPU {gpu}: {why}")
            for gpu, why in sorted(gpus.items())
        ]
    limit = _threshold(rule, group.slo)
    if limit is None:
        limit = 0.0 if rule.kind is AlertKind.QUEUE_DEPTH else None
    value = _measured(rule, group, window)
    if limit is None or value is None or value <= limit:
        return []
    return [
        Condition(
            rule,
            _labels(rule, env, service),
            value,
            f"{rule.kind} of {service} is {value:.4g}, over {limit:.4g}",
        )
    ]


class AlertEvaluator:
    """The state machine of every alert instance; time is passed to ``step``."""

    def __init__(self, *, keep_resolved: int = 20) -> None:
        self.alerts: dict[tuple[tuple[str, str], ...], Alert] = {}
        self.resolved: collections.deque[Alert] = collections.deque(maxlen=keep_resolved)

    def step(self, conditions: Iterable[Condition], *, now: float) -> list[Alert]:
        """Advance to ``now``; return the alerts that started firing or resolved."""
        changed: list[Alert] = []
        holding = {c.key: c for c in conditions}
        for key, alert in list(self.alerts.items()):
            if key not in holding:
                del self.alerts[key]
                if alert.state == "firing":
                    changed.append(replace(alert, state="resolved", ends_at=now))
                    self.resolved.append(changed[-1])
        for key, cond in holding.items():
            alert = self.alerts.get(key) or Alert(
                labels=cond.labels,
                annotations=(("summary", cond.summary),),
                state="pending",
                active_since=now,
                for_s=cond.rule.for_s,
                value=cond.value,
            )
            alert = replace(alert, value=cond.value, annotations=(("summary", cond.summary),))
            if alert.state == "pending" and now - alert.active_since >= alert.for_s:
                alert = replace(alert, state="firing", fired_at=now)
                changed.append(alert)
            self.alerts[key] = alert
        return changed

    def current(self) -> list[Alert]:
        """Pending and firing alerts, firing first."""
        return sorted(self.alerts.values(), key=lambda a: (a.state != "firing", a.labels))
