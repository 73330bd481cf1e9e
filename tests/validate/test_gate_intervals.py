"""The gate judges speed on bootstrap intervals over rounds: pass, fail or inconclusive,
with worked examples whose intervals can be checked by hand."""

from __future__ import annotations

import pytest

from llmfleet.spec.validation import GateSpec
from llmfleet.validate.gate import Evidence, Outcome, SideMetrics, Verdict, judge_gate, outcome_of
from llmfleet.validate.intervals import Metric, interval_of, ratio_interval
from llmfleet.validate.stats import LoadSummary, RequestSample, merge_summaries

ONLY_THROUGHPUT = GateSpec(max_ttft_p95_ratio=None, min_throughput_ratio=0.95)


def level(*tokens_per_s: float, answers: int = 20, seconds: float = 4.0) -> LoadSummary:
    """One round per figure: ``answers`` equal requests making that many tokens a second
    (equal requests: drawing them again changes nothing, so only rounds vary)."""
    parts = []
    for rate in tokens_per_s:
        tokens = round(rate * seconds / answers)
        assert tokens * answers == rate * seconds, "pick figures that divide evenly"
        sample = RequestSample(ok=True, ttft=0.1, e2e=0.5, token_times=(0.1, 0.2),
                               output_tokens=tokens)  # fmt: skip
        parts.append(([sample] * answers, seconds))
    return merge_summaries("c1", parts)


def throughput_verdict(candidate: LoadSummary, production: LoadSummary, **gate: float) -> Verdict:
    spec = ONLY_THROUGHPUT.model_copy(update=gate)
    evidence = Evidence(SideMetrics(speed={"c1": candidate}), SideMetrics(speed={"c1": production}))
    (verdict,) = [v for v in judge_gate(spec, evidence) if v.check.startswith("throughput")]
    return verdict


def test_rounds_are_paired_so_a_machine_slowing_down_moves_both_sides() -> None:
    """Production made 90, 45 then 30 tok/s in three rounds (the machine got busier), and
    the candidate twice that in each same round: every resample of paired rounds gives
    2.0, so the interval is [2, 2] and the candidate passes."""
    production, candidate = level(90, 45, 30), level(180, 90, 60)
    interval = ratio_interval(Metric.THROUGHPUT, candidate.rounds, production.rounds)
    assert (interval.point, interval.low, interval.high) == pytest.approx((2.0, 2.0, 2.0))
    verdict = throughput_verdict(candidate, production)
    assert verdict.outcome is Outcome.PASS and verdict.detail == "2x >= 0.95x"


def test_an_interval_that_straddles_the_limit_is_inconclusive() -> None:
    """Candidate 50 then 150 tok/s against production's 100 and 100: paired resamples of
    two rounds give 0.5 (first round twice), 1.0 (one each) or 1.5 (second twice), so the
    95% interval is [0.5, 1.5]. The ratio of the totals is 1.0, above 0.95, but the
    interval reaches below it: neither pass nor fail, run longer."""
    verdict = throughput_verdict(level(50, 150), level(100, 100))
    assert (verdict.observed, verdict.low, verdict.high) == pytest.approx((1.0, 0.5, 1.5))
    assert verdict.outcome is Outcome.INCONCLUSIVE and not verdict.passed
    assert verdict.detail == (
        "1x [0.5, 1.5] >= 0.95x: inconclusive, the interval straddles the limit; run longer"
    )


def test_an_interval_wholly_below_the_limit_fails() -> None:
    """40 and 45 tok/s against 100 and 100: the interval is [0.4, 0.45], all below 0.95."""
    verdict = throughput_verdict(level(40, 45), level(100, 100))
    assert verdict.outcome is Outcome.FAIL
    assert (verdict.low, verdict.high) == pytest.approx((0.4, 0.45))


def test_fewer_answers_than_min_samples_is_inconclusive_whatever_the_figures() -> None:
    """10 answers a side (min_samples 20 by default): even a 3x faster candidate is not
    judged; with min_samples 5 the same figures pass."""
    candidate, production = level(300, answers=10), level(100, answers=10)
    verdict = throughput_verdict(candidate, production)
    assert verdict.outcome is Outcome.INCONCLUSIVE and verdict.observed is None
    assert "too few answers to judge (candidate 10 and production 10" in verdict.detail
    assert "run longer" in verdict.detail
    assert throughput_verdict(candidate, production, min_samples=5).outcome is Outcome.PASS


def test_latency_p95_interval_and_absolute_slo() -> None:
    """Within one round, answers are drawn again: TTFTs of 0.1 s (19 of them) and one of
    1.0 s give a p95 between 0.1 and 1.0 depending on how often the slow one is drawn;
    an SLO of 2 s holds for the whole interval, one of 0.5 s straddles it."""
    fast = RequestSample(ok=True, ttft=0.1, e2e=0.2, token_times=(0.1,), output_tokens=1)
    slow = RequestSample(ok=True, ttft=1.0, e2e=1.1, token_times=(1.0,), output_tokens=1)
    summary = merge_summaries("c1", [([fast] * 19 + [slow], 2.0)])
    interval = interval_of(Metric.TTFT_P95, summary.rounds)
    assert interval.point == pytest.approx(summary.ttft.p95)
    assert 0.1 <= interval.low < interval.point <= interval.high <= 1.0
    assert interval_of(Metric.TTFT_P95, summary.rounds) == interval  # seeded: pure
    evidence = Evidence(SideMetrics(speed={"c1": summary}), SideMetrics())

    def slo(limit: float) -> Outcome:
        gate = GateSpec(max_ttft_p95_s=limit, min_samples=20)
        (verdict,) = [v for v in judge_gate(gate, evidence) if v.check == "p95 TTFT @c1"]
        return verdict.outcome

    assert slo(2.0) is Outcome.PASS
    assert slo(0.5) is Outcome.INCONCLUSIVE
    assert slo(0.05) is Outcome.FAIL


def test_one_failure_outweighs_inconclusive_checks() -> None:
    ok = Verdict("a", True, 1.0, 1.0, "")
    unsure = Verdict("b", False, None, 1.0, "", inconclusive=True)
    bad = Verdict("c", False, 2.0, 1.0, "")
    assert outcome_of([ok]) is Outcome.PASS
    assert outcome_of([ok, unsure]) is Outcome.INCONCLUSIVE
    assert outcome_of([unsure, bad, ok]) is Outcome.FAIL
    assert unsure.to_json()["outcome"] == "inconclusive"
