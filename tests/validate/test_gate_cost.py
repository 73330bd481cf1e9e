"""The release gate holds a candidate to its price per million tokens against production's."""

from __future__ import annotations

import pytest

from llmfleet.spec.validation import GateSpec
from llmfleet.validate.gate import Evidence, SideMetrics, check_cost, judge_gate, passed
from llmfleet.validate.stats import LoadSummary, RequestSample, summarize


def level(tokens_per_s: float, label: str = "c4") -> dict[str, LoadSummary]:
    """A level whose samples make ``tokens_per_s`` output tokens a second over 30 s."""
    sample = RequestSample(
        ok=True, ttft=0.1, e2e=0.2, token_times=(0.1,), output_tokens=int(tokens_per_s)
    )
    return {label: summarize(label, [sample] * 30, duration_s=30.0)}


def evidence(
    *, cand_tps: float, prod_tps: float, cand_cost: float | None, prod_cost: float | None
) -> Evidence:
    return Evidence(
        candidate=SideMetrics(speed=level(cand_tps), cost_per_hour=cand_cost),
        production=SideMetrics(speed=level(prod_tps), cost_per_hour=prod_cost),
    )


def test_a_candidate_that_costs_more_per_token_fails() -> None:
    """Same hardware ($0.07 an hour each side), the candidate serves 80 tokens/s against
    production's 100: its $/1M is 100 / 80 = 1.25x production's, over a 1.1 limit."""
    gate = GateSpec(max_cost_per_mtok_ratio=1.1)
    [verdict] = check_cost(
        gate, evidence(cand_tps=80, prod_tps=100, cand_cost=0.07, prod_cost=0.07)
    )
    assert not verdict.passed
    assert verdict.observed == pytest.approx(1.25)
    assert verdict.check == "$/1M output tokens / production @c4"
    assert verdict.detail == "1.25x <= 1.1x"


def test_a_faster_candidate_on_dearer_hardware_can_still_pass() -> None:
    """Twice the price per hour for 2.5x the tokens: 2 / 2.5 = 0.8x production's $/1M."""
    gate = GateSpec(max_cost_per_mtok_ratio=1.0)
    [verdict] = check_cost(gate, evidence(cand_tps=250, prod_tps=100, cand_cost=2.0, prod_cost=1.0))
    assert verdict.passed and verdict.observed == pytest.approx(0.8)


def test_an_unpriced_side_cannot_pass_and_says_what_to_add() -> None:
    gate = GateSpec(max_cost_per_mtok_ratio=1.1)
    [verdict] = check_cost(
        gate, evidence(cand_tps=100, prod_tps=100, cand_cost=None, prod_cost=1.0)
    )
    assert not verdict.passed and verdict.observed is None
    assert "no price for the candidate side" in verdict.detail


def test_no_throughput_is_no_measurement_not_a_division_by_zero() -> None:
    gate = GateSpec(max_cost_per_mtok_ratio=1.1)
    [verdict] = check_cost(gate, evidence(cand_tps=0, prod_tps=100, cand_cost=1.0, prod_cost=1.0))
    assert not verdict.passed and verdict.observed is None


def test_the_check_is_off_unless_the_gate_sets_it_and_runs_in_the_pipeline() -> None:
    ev = evidence(cand_tps=50, prod_tps=100, cand_cost=1.0, prod_cost=1.0)
    quiet = GateSpec(max_ttft_p95_ratio=None, min_throughput_ratio=None)
    assert check_cost(quiet, ev) == []
    assert passed(judge_gate(quiet, ev))
    strict = quiet.model_copy(update={"max_cost_per_mtok_ratio": 1.5})
    assert not passed(judge_gate(strict, ev))
