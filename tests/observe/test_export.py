"""Exports: the rule file passes the real promtool, the dashboard reads only real series."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
import yaml

from llmfleet.backends.base import ReplicaState, ReplicaStatus
from llmfleet.engines.sim.metrics import SimMetrics
from llmfleet.gateway.metrics import GatewayMetrics
from llmfleet.observe.costs import cost_samples, environment_prices
from llmfleet.observe.export import prom_duration, prometheus_rules, rules_yaml
from llmfleet.observe.exposition import Sample, render_samples
from llmfleet.observe.fleet import gateway_samples, replica_samples
from llmfleet.observe.gpu import GpuReading, GpuReport, gpu_samples
from llmfleet.observe.grafana import grafana_dashboard
from llmfleet.observe.ingestion import ingestion_samples
from llmfleet.observe.machine import MachineSampler
from llmfleet.observe.normalise import normalise_metrics
from llmfleet.rag.ingest import IngestReport
from llmfleet.spec.model import FleetSpec
from llmfleet.spec.observability import GpuLimits
from llmfleet.spec.resolve import resolve_fleet

ROOT = Path(__file__).resolve().parents[2]
DATA = Path(__file__).parent / "data"
ALL_KINDS = ["replica_down", "crash_loop", "error_rate", "ttft_p95", "itl_p95", "queue_depth",
             "gpu_unhealthy"]
PROMQL_WORDS = {"sum", "by", "rate", "increase", "histogram_quantile", "max", "min", "le",
                "or", "vector", "label_values", "service", "status", "replica", "gpu", "uuid",
                "environment", "alertname", "severity", "state", "alertstate", "reason"}


@pytest.fixture(scope="module")
def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        subprocess.run(["bash", str(ROOT / "scripts" / "ensure-promtool.sh")], check=True)
        found = shutil.which("promtool")
    assert found is not None
    return found


def fleet_with_every_alert() -> FleetSpec:
    alerts = [{"kind": kind, "for": "90s", "severity": "critical"} for kind in ALL_KINDS]
    alerts[5]["threshold"] = 10
    return FleetSpec.model_validate({"services": {"chat": {
        "model": "sim:tiny", "engine": {"kind": "sim", "version": "1.0.0"},
        "slo": {"ttft_p95_s": 0.5, "itl_p95_s": 0.05, "error_rate": 0.01},
        "alerts": alerts}}})


def test_promtool_accepts_the_exported_rules(promtool: str, tmp_path: Path) -> None:
    """Every kind of rule of both environments, checked by the real promtool."""
    text, warnings = rules_yaml(resolve_fleet(fleet_with_every_alert()).environments.values())
    assert warnings == []
    path = tmp_path / "rules.yml"
    path.write_text(text)
    result = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True,
                            text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 14 rules found" in result.stdout
    rules = yaml.safe_load(text)["groups"][0]["rules"]
    assert {r["for"] for r in rules} == {"90s"}
    assert rules[0]["labels"]["severity"] == "critical"


def test_a_latency_rule_without_slo_or_threshold_is_skipped_with_a_warning() -> None:
    spec = FleetSpec.model_validate({"services": {"chat": {
        "model": "sim:tiny", "engine": {"kind": "sim", "version": "1.0.0"},
        "alerts": [{"kind": "ttft_p95"}]}}})
    body, warnings = prometheus_rules(resolve_fleet(spec).environments.values())
    assert body["groups"] == [] and "ttft_p95 has no threshold" in warnings[0]


@pytest.mark.parametrize(("seconds", "text"), [(90, "90s"), (300, "5m"), (7200, "2h"),
                                               (0.25, "250ms"), (0, "0s")])
def test_prom_durations(seconds: float, text: str) -> None:
    assert prom_duration(seconds) == text


def exported_series() -> set[str]:
    """Every series name the agent's endpoint can carry, built from the real producers."""
    gateway = GatewayMetrics()
    for metric in (gateway.requests.labels("chat", "/v1/chat/completions", "200"),
                   gateway.prompt_tokens.labels("chat"), gateway.completion_tokens.labels("chat"),
                   gateway.retries.labels("chat"), gateway.resumed.labels("chat")):
        metric.inc()
    gateway.expect(["chat"], [("chat", "r")])  # the failure counters at 0, ejections too
    for histogram in (gateway.ttft, gateway.itl, gateway.e2e, gateway.overhead):
        histogram.labels("chat").observe(0.1)
    from prometheus_client import generate_latest

    samples = gateway_samples(generate_latest(gateway.registry).decode(), "production")
    samples += [Sample("llmfleet_gateway_queue_depth", "gauge", "llmfleet_gateway_queue_depth",
                       (), 0), Sample("llmfleet_gateway_in_flight", "gauge",
                                      "llmfleet_gateway_in_flight", (), 0)]
    labels = {"service": "chat", "replica": "r", "engine": "e"}
    for kind, text in (("vllm", (DATA / "vllm_metrics.txt").read_text()),
                       ("llamacpp", (DATA / "llamacpp_metrics.txt").read_text()),
                       ("sim", SimMetrics(running=lambda: 0, waiting=lambda: 0).render().decode())):
        samples += normalise_metrics(kind, text, labels)
    status = ReplicaStatus(replica_id="r", environment="p", service="chat", slot=0,
                           runtime_hash="", engine="sim", engine_version="1",
                           state=ReplicaState.READY, port=1)
    samples += replica_samples(status, now=0)
    gpu = GpuReading(0, "u", "H100", 50, 300, 1, 2, 0.5)
    samples += gpu_samples(GpuReport(True, gpus=(gpu,)), GpuLimits())
    samples += MachineSampler().samples()
    prices = environment_prices({}, {"chat": {"resources": {"cpus": 1}}})
    assert prices is not None
    served = (("environment", "p"), ("service", "chat"), ("replica", "r"))
    live = [Sample("llmfleet_replica_uptime_seconds", "gauge", "llmfleet_replica_uptime_seconds",
                   served, 100.0), Sample("llmfleet_generation_tokens_total", "counter",
                                          "llmfleet_generation_tokens_total", served, 500.0)]
    samples += cost_samples(samples + live, {"p": prices})
    with tempfile.TemporaryDirectory() as home:  # what `llmfleet ingest` leaves for the agent
        folder = Path(home) / "ingest" / "p"
        folder.mkdir(parents=True)
        report = IngestReport("docs", listed=1, finished_at=1.0)
        (folder / "docs.json").write_text(json.dumps(report.to_json()))
        samples += ingestion_samples(Path(home))
    names = {s.name for s in samples} | {s.family for s in samples}
    return names | {"llmfleet_alerts", "llmfleet_scrape_duration_seconds", "llmfleet_target_up"}


def test_grafana_dashboard_is_valid_json_and_reads_only_exported_series() -> None:
    """Every panel has a PromQL target; every llmfleet_* name in them exists."""
    dashboard = json.loads(json.dumps(grafana_dashboard()))
    assert dashboard["schemaVersion"] >= 36 and dashboard["uid"] and dashboard["title"]
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    titles = " ".join(p["title"] for p in panels).lower()
    for topic in ("requests", "first token", "tokens", "queue", "replicas", "gpu"):
        assert topic in titles
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])
    exported = exported_series()
    queries = [t["expr"] for p in panels for t in p["targets"]]
    queries += [v["definition"] for v in dashboard["templating"]["list"] if "definition" in v]
    for query in queries:
        names = set(re.findall(r"\bllmfleet_[a-z0-9_]+", query))
        assert names, query
        assert names <= exported, f"{names - exported} in {query}"


def test_rendered_fleet_samples_pass_promtool_check_metrics(promtool: str) -> None:
    """The endpoint's exposition format is valid for Prometheus (no lint problems that fail)."""
    labels = {"environment": "p", "service": "chat", "replica": "r", "engine": "vllm"}
    text = render_samples(normalise_metrics("vllm", (DATA / "vllm_metrics.txt").read_text(),
                                            labels))
    result = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True,
                            text=True, check=False)
    assert "error" not in (result.stdout + result.stderr).lower(), result.stdout + result.stderr


def test_failure_counters_start_at_zero_and_departed_replicas_are_dropped() -> None:
    """Retries, resumed streams and ejections export 0 for each known service and replica
    (a counter born at 1 is lost to rate()); a replica that left takes its series along."""
    from prometheus_client import generate_latest

    gateway = GatewayMetrics()
    gateway.expect(["chat"], [("chat", "r1"), ("chat", "r2")])
    text = generate_latest(gateway.registry).decode()
    assert 'llmfleet_gateway_retries_total{service="chat"} 0.0' in text
    assert 'llmfleet_gateway_resumed_streams_total{service="chat"} 0.0' in text
    assert 'llmfleet_gateway_ejections_total{replica="r2",service="chat"} 0.0' in text
    gateway.expect(["chat"], [("chat", "r1"), ("chat", "r3")])
    text = generate_latest(gateway.registry).decode()
    assert 'replica="r2"' not in text and 'replica="r3"' in text
