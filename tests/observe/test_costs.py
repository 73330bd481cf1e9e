"""The cost series of the fleet endpoint: $/hour of the replicas that run, and $/1M tokens
at the rate the engines' counters show since the replicas started."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from llmfleet.observe.costs import cost_samples, environment_prices, live_rates
from llmfleet.observe.exposition import Sample, render_samples

CPU = {"provider": "gcp", "price_per_vcpu_hour": 0.031611, "price_per_gib_hour": 0.004237}
SERVICES = {"chat": {"resources": {"cpus": 1, "memory": "1Gi"}}, "quiet": {"resources": {}}}


def replica(service: str, name: str, *, state: str = "ready", uptime: float = 0.0,
            out: float | None = None, prompt: float | None = None) -> list[Sample]:  # fmt: skip
    labels = (("environment", "production"), ("service", service), ("replica", name))
    samples = [
        Sample("llmfleet_replica_state", "gauge", "llmfleet_replica_state",
               (*labels, ("state", s)), 1.0 if s == state else 0.0)
        for s in ("ready", "stopped")
    ]  # fmt: skip
    samples.append(Sample("llmfleet_replica_uptime_seconds", "gauge",
                          "llmfleet_replica_uptime_seconds", labels, uptime))  # fmt: skip
    for name_, value in (("llmfleet_generation_tokens_total", out),
                         ("llmfleet_prompt_tokens_total", prompt)):  # fmt: skip
        if value is not None:
            samples.append(Sample(name_, "counter", name_, labels, value))
    return samples


SAMPLES = [
    *replica("chat", "c0", uptime=100, out=500, prompt=1000),  # 5 out, 10 in tok/s
    *replica("chat", "c1", uptime=50, out=100, prompt=0),  # 2 out tok/s
    *replica("chat", "c2", state="stopped"),  # holds nothing
    *replica("quiet", "q0", uptime=30, out=0, prompt=0),  # idle
]


def by_labels(samples: list[Sample], name: str) -> dict[tuple[str, ...], float]:
    return {tuple(v for _, v in s.labels): s.value for s in samples if s.name == name}


def test_live_rates_add_each_replicas_tokens_over_its_uptime() -> None:
    rate = live_rates(SAMPLES)[("production", "chat")]
    assert rate.output_tokens_per_s == pytest.approx(7.0)
    assert rate.input_tokens_per_s == pytest.approx(10.0)
    assert rate.seconds == 50


def test_cost_per_hour_counts_running_replicas_and_per_million_skips_idle_services() -> None:
    """chat: 2 running replicas x $0.035848 = $0.071696 an hour; at 7 output tokens/s
    that is 0.071696 / 25,200 x 1e6 = $2.8451 per 1M output tokens, and at 10 input
    tokens/s $1.9916 per 1M input tokens. quiet: $0.035848 an hour and no price per
    token (it served none: not a number, not infinity)."""
    prices = environment_prices({"cpu": CPU}, SERVICES)
    assert prices is not None
    out = cost_samples(SAMPLES, {"production": prices})
    hourly = by_labels(out, "llmfleet_cost_usd_per_hour")
    assert hourly[("production", "chat")] == pytest.approx(0.071696)
    assert hourly[("production", "quiet")] == pytest.approx(0.035848)
    per_mtok = by_labels(out, "llmfleet_cost_usd_per_million_tokens")
    assert per_mtok == {
        ("production", "chat", "output"): pytest.approx(0.071696 / 25_200 * 1e6),
        ("production", "chat", "input"): pytest.approx(0.071696 / 36_000 * 1e6),
    }


def test_the_currency_names_the_series_and_unparseable_prices_export_nothing() -> None:
    euro = environment_prices({"currency": "EUR", "cpu": {**CPU, "currency": "EUR"}}, SERVICES)
    assert euro is not None
    names = {s.name for s in cost_samples(SAMPLES, {"production": euro})}
    assert "llmfleet_cost_eur_per_hour" in names
    assert environment_prices({"currency": "nope"}, SERVICES) is None
    assert environment_prices(None, SERVICES) is None


def test_the_cost_series_pass_promtool_check_metrics() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        subprocess.run(["bash", "scripts/ensure-promtool.sh"], check=True)
        promtool = shutil.which("promtool")
    assert promtool is not None
    prices = environment_prices({"cpu": CPU}, SERVICES)
    assert prices is not None
    text = render_samples(cost_samples(SAMPLES, {"production": prices}))
    result = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True,
                            text=True, check=False)  # fmt: skip
    assert "error" not in (result.stdout + result.stderr).lower(), result.stdout + result.stderr
