"""`llmfleet costs`, the bill lines of `plan` and the agent's cost series, end to end with the
real CLI, agent and sim engine: bench records a measurement, costs prices tokens with it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fixtures.fleet import Fleet

SPEC = """
services:
  chat:
    model: sim:tiny
    engine: {kind: sim, version: "1.0.0"}
    replicas: REPLICAS
    slots: 2
    resources: {cpus: 1, memory: 1Gi}
costs:
  COSTS
environments:
  production: {gateway: {port: GATEWAY_PORT}}
"""
CPU_PRICE = (
    "cpu: {provider: gcp, price_per_vcpu_hour: 0.031611, price_per_gib_hour: 0.004237, "
    'as_of: "2026-12-01"}'
)
PER_REPLICA_HOUR = 0.031611 + 0.004237


def spec(replicas: int, costs: str = CPU_PRICE) -> str:
    return SPEC.replace("REPLICAS", str(replicas)).replace("COSTS", costs)


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    project = Fleet(tmp_path_factory.mktemp("costs"))
    project.write(spec(2))
    try:
        project.run("apply", "--yes")
        yield project
    finally:
        project.down()


def costs(fleet: Fleet) -> Any:
    """`llmfleet costs --json`, parsed."""
    return json.loads(fleet.run("costs", "--json").stdout)


def test_before_a_bench_the_hourly_price_is_known_and_tokens_are_not_measured(fleet: Fleet) -> None:
    body = costs(fleet)
    [chat] = body["services"]
    assert chat["per_hour"] == pytest.approx(2 * PER_REPLICA_HOUR)
    assert chat["per_million_output_tokens"] is None
    assert chat["measured_note"] == "not measured; run llmfleet bench chat"
    assert chat["price"]["origin"] == "spec"


def test_bench_then_costs_prices_tokens_with_the_measurement(fleet: Fleet) -> None:
    """$/1M output tokens = the measured replicas' price per hour / the measured tokens per
    hour x 1e6, at the level nearest the service's concurrency (2 replicas x 2 slots = 4)."""
    bench = fleet.run("bench", "chat", "--concurrency", "1,4", "--duration", "1",
                      "--max-tokens", "16")  # fmt: skip
    assert "recorded as measurement(s)" in bench.stdout
    [chat] = costs(fleet)["services"]
    measured = chat["measurement"]
    assert measured["concurrency"] == 4 and measured["source"] == "bench"
    assert measured["exact_revision"] is True and measured["replicas"] == 2
    hourly = measured["replicas"] * PER_REPLICA_HOUR
    assert chat["per_million_output_tokens"] == pytest.approx(
        hourly / (measured["output_tokens_per_s"] * 3600) * 1e6
    )
    assert measured["input_tokens_per_s"] > 0
    assert chat["per_million_input_tokens"] == pytest.approx(
        hourly / (measured["input_tokens_per_s"] * 3600) * 1e6
    )
    assert chat["live"]["output_tokens_per_s"] > 0  # the bench's tokens, since start
    assert 0 <= chat["idle_share"] <= 1
    table = fleet.run("costs").stdout
    assert f"#{measured['id']} bench" in table and "at concurrency 4" in table


def test_the_agent_exports_the_cost_series(fleet: Fleet) -> None:
    transport = httpx.HTTPTransport(uds=str(fleet.backend.socket_path))
    with httpx.Client(transport=transport, base_url="http://agent", timeout=10) as client:
        text = client.get("/v1/metrics").text
    [line] = [x for x in text.splitlines() if x.startswith("llmfleet_cost_usd_per_hour{")]
    assert 'service="chat"' in line
    assert float(line.rsplit(" ", 1)[1]) == pytest.approx(2 * PER_REPLICA_HOUR)
    assert (
        'llmfleet_cost_usd_per_million_tokens{environment="production",service="chat",direction="output"}'
        in text
    )


def test_plan_shows_what_a_scale_up_adds_to_the_bill(fleet: Fleet) -> None:
    fleet.write(spec(3))
    try:
        out = fleet.run("plan").stdout
    finally:
        fleet.write(spec(2))
    monthly = PER_REPLICA_HOUR * 730
    assert f"bill: +1 replica of chat: +${monthly:.2f}/month (1 vCPU, 1Gi, GCP on-demand at" in out
    assert f"Monthly bill: ${2 * monthly:.2f} -> ${3 * monthly:.2f} (+${monthly:.2f})" in out


def test_a_missing_price_names_the_service_and_the_rest_is_computed(tmp_path: Path) -> None:
    """Without a cpu price and without the catalogue: no traceback, the service and the key
    to add are named, exit 0; `costs` works without a runtime (no live counters)."""
    project = Fleet(tmp_path)
    project.write(spec(1, "catalogue: false\n  cpuu: {}"))
    refused = project.run("costs", check=False)
    assert refused.returncode == 2 and "did you mean 'cpu'?" in refused.stderr
    project.write(spec(1, "catalogue: false"))
    result = project.run("costs")
    assert "no price" in result.stdout
    assert "chat: no price for cpu; add costs.cpu" in " ".join(result.stdout.split())
    assert "no live counters" in result.stdout


def test_plan_warns_about_a_price_older_than_the_limit(tmp_path: Path) -> None:
    """A price as of 2026-01-02 is far past the 90 days; plan says so, with where to update."""
    project = Fleet(tmp_path)
    project.write(spec(1, CPU_PRICE.replace("2026-12-01", "2026-01-02")))
    out = " ".join(project.run("plan").stdout.split())
    assert "warning: the price of cpu (GCP on-demand, as of 2026-01-02) is" in out
    assert "days old; check it and update costs.cpu" in out
