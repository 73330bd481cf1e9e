"""Per-service figures: $/hour and $/month of what runs, $/1M tokens at the measurement of
that exact revision (or the same runtime) at the service's concurrency, live utilisation,
and own against cloud; never a division by zero."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from llmfleet.costs.measured import pick_measurement
from llmfleet.costs.report import (
    LiveRate,
    ServiceCost,
    cost_environment,
    cost_service,
    fleet_json,
)
from llmfleet.state.records import Measurement
from tests.costs.helpers import CPU, H100_OWN, TODAY, book, gpu_service, measurement, service

CHAT = service(replicas=2, slots=4)  # runs at concurrency 8


def cost_chat(rows: list[Measurement], *, live: LiveRate | None = None) -> ServiceCost:
    """``chat`` at serial 7 in production, priced at the test's CPU price."""
    return cost_service(
        "chat",
        CHAT,
        environment="production",
        book=book(cpu=CPU),
        serial=7,
        measurements=rows,
        live=live,
    )


def test_the_measurement_of_the_exact_revision_at_the_nearest_concurrency_is_picked() -> None:
    """Levels 1, 4 and 16 of revision 7: the service runs 2 x 4 = 8 in parallel, 4 is the
    nearest; an older run and another revision's run are not used."""
    older = datetime(2026, 11, 1, tzinfo=UTC)
    rows = [
        measurement(1, spec=CHAT, concurrency=8, at=older),
        measurement(2, spec=CHAT, concurrency=1),
        measurement(3, spec=CHAT, concurrency=4),
        measurement(4, spec=CHAT, concurrency=16),
        measurement(5, spec=CHAT, concurrency=8, serial=6, at=datetime(2026, 12, 2, tzinfo=UTC)),
    ]
    pick = pick_measurement(
        rows, environment="production", serial=7, runtime_hash=CHAT.runtime_hash(), concurrency=8
    )
    assert pick is not None and pick.measurement.id == 3 and pick.exact_revision


def test_the_same_runtime_measured_under_another_revision_is_used_and_said_so() -> None:
    """A validation measured the candidate in staging (serial 9); once promoted, production's
    revision 12 runs the same runtime: that measurement prices it, marked as such. Another
    runtime's measurement never does."""
    staged = measurement(1, spec=CHAT, serial=9, environment="staging")
    other = measurement(2, spec=CHAT, runtime_hash="different")
    pick = pick_measurement(
        [staged, other],
        environment="production",
        serial=12,
        runtime_hash=CHAT.runtime_hash(),
        concurrency=8,
    )
    assert pick is not None and pick.measurement.id == 1 and not pick.exact_revision
    assert (
        pick_measurement(
            [other],
            environment="production",
            serial=12,
            runtime_hash=CHAT.runtime_hash(),
            concurrency=8,
        )
        is None
    )


def test_price_per_million_tokens_is_price_over_measured_tokens_per_hour() -> None:
    """Two CPU replicas at $0.035848 an hour each, measured at 100 output and 50 input
    tokens/s: 0.071696 / 360,000 x 1e6 = $0.19916 per 1M output tokens and
    0.071696 / 180,000 x 1e6 = $0.39831 per 1M input tokens; $52.34 a month."""
    cost = cost_chat([measurement(spec=CHAT)], live=None)
    assert cost.per_hour == pytest.approx(0.071696)
    assert cost.per_month == pytest.approx(0.071696 * 730)
    assert cost.per_mtok_output == pytest.approx(0.071696 / 360_000 * 1e6)
    assert cost.per_mtok_input == pytest.approx(0.071696 / 180_000 * 1e6)
    assert cost.measured_note == ""


def test_a_measurement_of_fewer_replicas_is_priced_as_what_was_measured() -> None:
    """Measured with 1 replica (before a scale-up) at 60 tokens/s: $/1M is one replica's
    price over 60 tokens/s, whatever runs now."""
    cost = cost_chat([measurement(spec=CHAT, replicas=1, output=60)], live=None)
    assert cost.per_mtok_output == pytest.approx(0.035848 / (60 * 3600) * 1e6)


@pytest.mark.parametrize("rows", [[], [measurement(spec=CHAT, output=0.0, inp=0.0)]])
def test_no_measurement_or_zero_throughput_says_run_bench(rows: list[Measurement]) -> None:
    cost = cost_chat(rows, live=None)
    assert cost.per_mtok_output is None and cost.per_mtok_input is None
    assert cost.measured_note == "not measured; run llmfleet bench chat"
    assert cost.per_hour == pytest.approx(0.071696)


def test_input_tokens_not_reported_are_not_priced() -> None:
    cost = cost_chat([measurement(spec=CHAT, inp=0.0)], live=None)
    assert cost.per_mtok_output is not None and cost.per_mtok_input is None
    assert "input tokens not measured" in cost.measured_note


def test_live_utilisation_idle_share_and_effective_price() -> None:
    """Measured 100 tokens/s at concurrency 8 with 2 replicas; the counters say 25 tokens/s
    on average since start: utilisation 0.25, idle 0.75, and the effective price is the
    hourly price over 25 tokens/s (four times the measured one)."""
    live = LiveRate(output_tokens_per_s=25.0, input_tokens_per_s=10.0, seconds=3600)
    cost = cost_chat([measurement(spec=CHAT)], live=live)
    assert cost.utilisation == pytest.approx(0.25) and cost.idle_share == pytest.approx(0.75)
    assert cost.effective_per_mtok_output == pytest.approx(4 * cost.per_mtok_output)  # type: ignore[operator]
    idle = cost_chat([measurement(spec=CHAT)], live=LiveRate(0.0, 0.0, 60))
    assert idle.idle_share == 1.0 and idle.effective_per_mtok_output is None
    assert "idle" in idle.live_note


def test_own_against_cloud_with_break_even_and_payback() -> None:
    """An H100 service on the cloud (AWS $6.88) beside an own server ($1.65736 per GPU-hour):
    break-even at 24.1 % of the hours, paid back in 8.6 months."""
    svc = gpu_service()
    cost = cost_service(
        "big",
        svc,
        environment="production",
        book=book(own={"nvidia-h100": H100_OWN}),
        serial=7,
        measurements=[],
        live=None,
    )
    c = cost.comparison
    assert c is not None and c.basis == "own"
    assert cost.per_month == pytest.approx(6.88 * 730)
    assert c.per_month == pytest.approx(1.65736 * 730, abs=0.01)
    assert c.break_even_utilisation == pytest.approx(0.2409, abs=1e-4)
    assert c.payback_months == pytest.approx(8.602, abs=1e-3)


def test_a_missing_price_is_named_and_the_rest_is_still_computed() -> None:
    """One service on an unpriced A100, one CPU service: the CPU one is priced, the A100
    one is listed with the key to add, and the total counts what is priced."""
    fleet = cost_environment(
        "production",
        {"chat": CHAT, "odd": service(resources={"gpus": 1, "gpu_type": "nvidia-a100"})},
        book=book(cpu=CPU),
        serial=7,
        measurements=[measurement(spec=CHAT)],
        live=None,
        today=TODAY,
    )
    assert [s.service for s in fleet.missing] == ["odd"]
    assert fleet.per_hour == pytest.approx(0.071696)
    assert any(
        "odd: no price for nvidia-a100; add costs.cloud.nvidia-a100" in w for w in fleet.warnings
    )
    body = fleet_json(fleet)
    assert body["unpriced_services"] == ["odd"]
    chat = body["services"][0]
    assert chat["measurement"]["id"] == 1 and chat["measurement"]["concurrency"] == 4
    assert chat["price"]["origin"] == "spec" and chat["live_note"].startswith("no live counters")
