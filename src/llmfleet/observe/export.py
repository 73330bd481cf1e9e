"""The spec's alerts as a Prometheus rule file; pure.

The expressions read the series of the agent's fleet endpoint and mean what the
local evaluator checks (``observe.alerts``), so a fleet that outgrows one machine
keeps its alerts in Prometheus and Alertmanager unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import yaml

from llmfleet.spec.model import ResolvedEnvironment, ServiceSpec
from llmfleet.spec.observability import AlertKind, AlertRule

RATE_WINDOW = "5m"


def prom_duration(seconds: float) -> str:
    """A duration Prometheus parses (integers with a unit); pure."""
    if seconds == int(seconds):
        whole = int(seconds)
        for unit, size in (("h", 3600), ("m", 60)):
            if whole and whole % size == 0:
                return f"{whole // size}{unit}"
        return f"{whole}s"
    return f"{round(seconds * 1000)}ms"


def _selector(env: str, service: str, extra: str = "") -> str:
    """``{environment="E",service="S"[,EXTRA]}``; ``extra`` is a raw matcher."""
    matchers = f'environment="{env}",service="{service}"'
    return "{" + matchers + (f",{extra}" if extra else "") + "}"


def _p95(family: str, sel: str) -> str:
    return f"histogram_quantile(0.95, sum by (le) (rate({family}_bucket{sel}[{RATE_WINDOW}])))"


def rule_expression(rule: AlertRule, service: ServiceSpec, env: str, name: str) -> str | None:
    """PromQL for one rule, or None when it has no threshold (no SLO and none given)."""
    sel = _selector(env, name)
    kind = rule.kind
    if kind is AlertKind.REPLICA_DOWN:
        down = _selector(env, name, 'state=~"unhealthy|backoff|crash-loop"')
        return f"max by (environment, service, replica) (llmfleet_replica_state{down}) > 0"
    if kind is AlertKind.CRASH_LOOP:
        looping = _selector(env, name, 'state="crash-loop"')
        return f"llmfleet_replica_state{looping} > 0"
    if kind is AlertKind.GPU_UNHEALTHY:
        return "min by (gpu, uuid) (llmfleet_gpu_healthy) == 0"
    limit = _limit(rule, service)
    if limit is None:
        return None
    if kind is AlertKind.QUEUE_DEPTH:
        return (
            f"(sum(llmfleet_gateway_queue_depth{sel}) or vector(0)) + "
            f"(sum(llmfleet_requests_waiting{sel}) or vector(0)) > {limit:g}"
        )
    if kind is AlertKind.ERROR_RATE:
        errors = _selector(env, name, 'status=~"5.."')
        return (
            f"sum(rate(llmfleet_gateway_requests_total{errors}[{RATE_WINDOW}])) / "
            f"sum(rate(llmfleet_gateway_requests_total{sel}[{RATE_WINDOW}])) > {limit:g}"
        )
    family = (
        "llmfleet_gateway_time_to_first_token_seconds"
        if kind is AlertKind.TTFT_P95
        else "llmfleet_gateway_inter_token_latency_seconds"
    )
    return f"{_p95(family, sel)} > {limit:g}"


def _limit(rule: AlertRule, service: ServiceSpec) -> float | None:
    if rule.threshold is not None:
        return rule.threshold
    slo = service.slo
    return {
        AlertKind.TTFT_P95: slo.ttft_p95_s,
        AlertKind.ITL_P95: slo.itl_p95_s,
        AlertKind.ERROR_RATE: slo.error_rate,
        AlertKind.QUEUE_DEPTH: 0.0,
    }.get(rule.kind)


def _rule(rule: AlertRule, expr: str, env: str, name: str) -> dict[str, Any]:
    return {
        "alert": rule.alert_name,
        "expr": expr,
        "for": prom_duration(rule.for_s),
        "labels": {"severity": str(rule.severity), "environment": env, "service": name},
        "annotations": {
            "summary": f"{rule.kind} of {name} in {env}",
            "description": f"llmfleet rule {rule.kind} for {rule.for_}",
        },
    }


def prometheus_rules(
    environments: Iterable[ResolvedEnvironment],
) -> tuple[dict[str, Any], list[str]]:
    """(rule file, warnings): one group per environment; rules without a limit are skipped."""
    groups: list[dict[str, Any]] = []
    warnings: list[str] = []
    for env in environments:
        rules = []
        for name, service in sorted(env.services.items()):
            for rule in service.alerts:
                expr = rule_expression(rule, service, env.name, name)
                if expr is None:
                    warnings.append(
                        f"{env.name}/{name}: {rule.kind} has no threshold and no "
                        "slo value; set threshold: or slo:"
                    )
                    continue
                rules.append(_rule(rule, expr, env.name, name))
        if rules:
            groups.append({"name": f"llmfleet-{env.name}", "rules": rules})
    return {"groups": groups}, warnings


def rules_yaml(environments: Iterable[ResolvedEnvironment]) -> tuple[str, list[str]]:
    body, warnings = prometheus_rules(environments)
    return yaml.safe_dump(body, sort_keys=False, width=200), warnings
