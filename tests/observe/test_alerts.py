"""Alert rules: conditions from replicas and scrapes, the for: state machine, the payload."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from llmfleet.backends.base import ReplicaState, ReplicaStatus
from llmfleet.observe.alerts import AlertEvaluator, Condition, ServiceRules, active_conditions
from llmfleet.observe.exposition import Sample
from llmfleet.observe.notify import alertmanager_payload
from llmfleet.observe.signals import Window, error_rate, histogram_p95, quantile
from llmfleet.spec.observability import AlertKind, AlertRule, Slo, parse_duration

ENV, SVC = "production", "chat"


def rule(kind: str, **extra: object) -> AlertRule:
    return AlertRule.model_validate({"kind": kind, **extra})


def replica(state: ReplicaState, *, restarts: int = 0, rid: str = "r0") -> ReplicaStatus:
    return ReplicaStatus(replica_id=rid, environment=ENV, service=SVC, slot=0, runtime_hash="h",
                         engine="sim", engine_version="1", state=state, port=1,
                         restarts=restarts)


def requests(ok: float, failed: float) -> list[Sample]:
    base = (("environment", ENV), ("service", SVC), ("endpoint", "/v1/chat/completions"))
    name = "llmfleet_gateway_requests_total"
    return [Sample("x", "counter", name, (*base, ("status", "200")), ok),
            Sample("x", "counter", name, (*base, ("status", "503")), failed)]


def ttft(counts: dict[str, float]) -> list[Sample]:
    name = "llmfleet_gateway_time_to_first_token_seconds_bucket"
    return [Sample("x", "histogram", name, (("environment", ENV), ("service", SVC), ("le", le)),
                   value) for le, value in counts.items()]


def conditions(rules: list[AlertRule], *, window: Window | None = None,
               replicas: Sequence[ReplicaStatus] = (), gpus: dict[str, str] | None = None,
               slo: Slo | None = None) -> list[Condition]:
    group = ServiceRules(ENV, SVC, tuple(rules), slo or Slo())
    return list(active_conditions([group], replicas=list(replicas),
                                  window=window or Window((), ()), unhealthy_gpus=gpus or {}))


@pytest.mark.parametrize(("text", "seconds"), [("5m", 300), ("30s", 30), ("1.5h", 5400),
                                               ("250ms", 0.25)])
def test_durations_parse(text: str, seconds: float) -> None:
    """for: accepts ms, s, m and h."""
    assert parse_duration(text) == seconds


def test_for_five_minutes_fires_only_after_five_minutes_of_injected_time() -> None:
    """pending at t=0, still pending at 4m59s, firing at 5m, resolved when it stops holding."""
    evaluator = AlertEvaluator()
    down = conditions([rule("replica_down", **{"for": "5m"})],
                      replicas=[replica(ReplicaState.CRASH_LOOP, restarts=3)])
    assert evaluator.step(down, now=1000.0) == []
    assert evaluator.current()[0].state == "pending"
    assert evaluator.step(down, now=1000.0 + 299) == []
    fired = evaluator.step(down, now=1000.0 + 300)
    assert [a.state for a in fired] == ["firing"]
    assert dict(fired[0].labels)["replica"] == "r0"
    resolved = evaluator.step([], now=1400.0)
    assert [(a.state, a.ends_at) for a in resolved] == [("resolved", 1400.0)]
    assert evaluator.current() == []


def test_a_pending_alert_that_stops_holding_is_forgotten_silently() -> None:
    """A blip shorter than for: never notifies."""
    evaluator = AlertEvaluator()
    down = conditions([rule("replica_down", **{"for": "1m"})],
                      replicas=[replica(ReplicaState.BACKOFF, restarts=1)])
    evaluator.step(down, now=0.0)
    assert evaluator.step([], now=30.0) == []
    assert evaluator.step(down, now=61.0) == []  # restarted pending, from 61 s


def test_replica_down_covers_restarting_replicas_and_crash_loop_only_crash_loops() -> None:
    """STARTING after a crash is down; a fresh STARTING replica is not."""
    rules = [rule("replica_down"), rule("crash_loop")]
    assert conditions(rules, replicas=[replica(ReplicaState.STARTING)]) == []
    names = [c.rule.kind for c in conditions(
        rules, replicas=[replica(ReplicaState.STARTING, restarts=1)])]
    assert names == [AlertKind.REPLICA_DOWN]
    looping = conditions(rules, replicas=[replica(ReplicaState.CRASH_LOOP, restarts=3)])
    assert len(looping) == 2


def test_error_rate_uses_counter_deltas_over_the_window() -> None:
    """Old errors do not count: 5 of 100 requests in the window failed."""
    window = Window(old=requests(ok=1000, failed=50), new=requests(ok=1095, failed=55))
    assert error_rate(window, ENV, SVC) == pytest.approx(0.05)
    fired = conditions([rule("error_rate")], window=window, slo=Slo(error_rate=0.01))
    assert len(fired) == 1 and fired[0].value == pytest.approx(0.05)
    assert conditions([rule("error_rate", threshold=0.1)], window=window) == []


def test_ttft_p95_against_the_service_slo() -> None:
    """p95 interpolates within the bucket, as histogram_quantile does."""
    old = ttft({"0.1": 0, "0.5": 0, "1": 0, "+Inf": 0})
    new = ttft({"0.1": 50, "0.5": 90, "1": 100, "+Inf": 100})
    window = Window(old, new)
    assert histogram_p95(window, "llmfleet_gateway_time_to_first_token_seconds", ENV, SVC) == (
        pytest.approx(0.75))
    assert len(conditions([rule("ttft_p95")], window=window, slo=Slo(ttft_p95_s=0.5))) == 1
    assert conditions([rule("ttft_p95")], window=window, slo=Slo(ttft_p95_s=1.0)) == []
    assert conditions([rule("ttft_p95")], window=window) == []  # no slo, no threshold


def test_quantile_edge_cases() -> None:
    assert quantile(0.95, []) is None
    assert quantile(0.95, [(1.0, 0.0), (float("inf"), 0.0)]) is None
    assert quantile(0.5, [(1.0, 0.0), (float("inf"), 10.0)]) == 1.0


def test_queue_depth_adds_gateway_and_engine_queues() -> None:
    labels = (("environment", ENV), ("service", SVC))
    new = [Sample("x", "gauge", "llmfleet_gateway_queue_depth", labels, 7),
           Sample("x", "gauge", "llmfleet_requests_waiting", (*labels, ("replica", "r0")), 5)]
    fired = conditions([rule("queue_depth", threshold=10)], window=Window(new, new))
    assert fired[0].value == 12


def test_gpu_unhealthy_is_one_alert_per_gpu() -> None:
    fired = conditions([rule("gpu_unhealthy", severity="critical")],
                       gpus={"0": "2 XID error(s)", "1": "temperature 95 C"})
    assert [dict(c.labels)["gpu"] for c in fired] == ["0", "1"]


def test_payload_is_alertmanager_webhook_format() -> None:
    """version 4, status, groupKey, alerts[] with RFC 3339 startsAt and zero endsAt."""
    evaluator = AlertEvaluator()
    down = conditions([rule("replica_down", **{"for": "0s"}, severity="critical")],
                      replicas=[replica(ReplicaState.UNHEALTHY)])
    fired = evaluator.step(down, now=1_700_000_000.0)
    body = alertmanager_payload(fired, external_url="http://127.0.0.1:9464")
    assert body["version"] == "4" and body["status"] == "firing"
    assert body["groupKey"] == '{}:{alertname="LlmfleetReplicaDown"}'
    assert body["commonLabels"]["severity"] == "critical"
    alert = body["alerts"][0]
    assert alert["startsAt"] == "2023-11-14T22:13:20Z"
    assert alert["endsAt"] == "0001-01-01T00:00:00Z"
    assert alert["labels"]["replica"] == "r0" and alert["annotations"]["summary"]
    resolved = alertmanager_payload(evaluator.step([], now=1_700_000_060.0), external_url="x")
    assert resolved["status"] == "resolved"
    assert resolved["alerts"][0]["endsAt"] == "2023-11-14T22:14:20Z"
