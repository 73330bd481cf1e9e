"""The release gate: thresholds against measurements -> a verdict per check; pure.

The checks are a pipeline of small callables with one signature
``(gate, evidence) -> verdicts`` (structlog's processors), so adding a check is
adding a function. Relative checks compare the candidate with production as
measured in the same run, level by level; absolute checks compare with the SLOs.

Speed is noisy, so speed checks judge a bootstrap interval (validate.intervals),
not a single figure: a check passes when its whole interval is within the limit,
fails when its whole interval is beyond it, and is *inconclusive* otherwise, or
when a level has fewer answers than ``gate.min_samples``. An inconclusive check is
neither a pass nor a fail: the run was too short to tell, so run longer.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from llmfleet.costs.formulas import per_million
from llmfleet.spec.validation import GateSpec
from llmfleet.validate.intervals import Interval, Metric, interval_of, ratio_interval
from llmfleet.validate.stats import LoadSummary


@dataclass(frozen=True)
class SideMetrics:
    """What one side (candidate or production) measured."""

    quality_pass_rate: float | None = None
    speed: Mapping[str, LoadSummary] = field(default_factory=dict)
    replicas: int = 1
    """behind the side's gateway; relative throughput is compared per replica."""
    cost_per_hour: float | None = None
    """what the side's replicas cost per hour at its environment's prices; None: unpriced"""
    retrieval_rate: float | None = None
    """an agent's share of ``retrieved`` checks met (expected sources in its top k)"""

    def cost_per_mtok(self, label: str) -> float:
        """Price per million output tokens at level ``label``; NaN when it cannot be known."""
        summary = self.speed.get(label)
        if self.cost_per_hour is None or summary is None:
            return math.nan
        value = per_million(self.cost_per_hour, summary.output_tokens_per_s)
        return math.nan if value is None else value


@dataclass(frozen=True)
class Evidence:
    candidate: SideMetrics
    production: SideMetrics
    agreement: float | None = None


class Outcome(StrEnum):
    PASS = "pass"  # noqa: S105 - a verdict, not a password
    FAIL = "fail"
    INCONCLUSIVE = "inconclusive"


@dataclass(frozen=True)
class Verdict:
    check: str
    passed: bool
    observed: float | None
    limit: float | None
    detail: str
    inconclusive: bool = False
    """too few answers, or an interval that straddles the limit: neither pass nor fail"""
    low: float | None = None
    high: float | None = None
    """the observed figure's confidence interval, for speed checks"""

    @property
    def outcome(self) -> Outcome:
        if self.inconclusive:
            return Outcome.INCONCLUSIVE
        return Outcome.PASS if self.passed else Outcome.FAIL

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "outcome": self.outcome.value}


GateCheck = Callable[[GateSpec, Evidence], list[Verdict]]


def _verdict(
    check: str, observed: float, limit: float, *, at_most: bool, unit: str = ""
) -> Verdict:
    if math.isnan(observed):
        return Verdict(check, False, None, limit, "no measurement (every request failed?)")
    passed = observed <= limit if at_most else observed >= limit
    word = "<=" if at_most else ">="
    return Verdict(check, passed, observed, limit, f"{observed:.3g}{unit} {word} {limit:.3g}{unit}")


def check_quality(gate: GateSpec, evidence: Evidence) -> list[Verdict]:
    rate = evidence.candidate.quality_pass_rate
    if rate is None:
        return []
    return [_verdict("quality pass rate", rate, gate.min_quality_pass_rate, at_most=False)]


def check_agreement(gate: GateSpec, evidence: Evidence) -> list[Verdict]:
    if gate.min_agreement is None or evidence.agreement is None:
        return []
    return [
        _verdict("agreement with production", evidence.agreement, gate.min_agreement, at_most=False)
    ]


def check_retrieval(gate: GateSpec, evidence: Evidence) -> list[Verdict]:
    """An agent must find its expected sources at least as often as production's does
    on the same golden tasks (less ``max_retrieval_drop``): retrieving worse fails even
    when the quality threshold lets a few cases fail."""
    mine, theirs = evidence.candidate.retrieval_rate, evidence.production.retrieval_rate
    if gate.max_retrieval_drop is None or mine is None or theirs is None:
        return []
    limit = max(0.0, theirs - gate.max_retrieval_drop)
    verdict = _verdict("retrieval hit rate vs production", mine, limit, at_most=False)
    detail = f"{mine:.0%} of expected sources found in the top k, production {theirs:.0%}"
    return [Verdict(verdict.check, verdict.passed, mine, limit, detail)]


def check_errors(gate: GateSpec, evidence: Evidence) -> list[Verdict]:
    return [
        _verdict(f"error rate @{label}", summary.error_rate, gate.max_error_rate, at_most=True)
        for label, summary in evidence.candidate.speed.items()
    ]


def _ratio(candidate: float, production: float) -> float:
    if production <= 0 or math.isnan(production) or math.isnan(candidate):
        return math.nan
    return candidate / production


def _judge_interval(
    check: str, interval: Interval, limit: float, *, at_most: bool, unit: str = ""
) -> Verdict:
    """Pass when the whole interval is within ``limit``, fail when it is wholly beyond."""
    if math.isnan(interval.point):
        return Verdict(check, False, None, limit, "no measurement (every request failed?)")
    low, high = interval.low, interval.high
    if math.isnan(low):
        low = high = interval.point
    inside, outside = (high <= limit, low > limit) if at_most else (low >= limit, high < limit)
    word = "<=" if at_most else ">="
    detail = f"{interval.show(unit)} {word} {limit:.3g}{unit}"
    if not inside and not outside:
        detail += ": inconclusive, the interval straddles the limit; run longer"
    return Verdict(
        check, inside, interval.point, limit, detail, not inside and not outside, low, high
    )


def _too_few(check: str, limit: float, counts: Mapping[str, int], needed: int) -> Verdict | None:
    """An inconclusive verdict when a side answered fewer than ``needed`` requests."""
    short = {side: n for side, n in counts.items() if n < needed}
    if not short:
        return None
    told = " and ".join(f"{side} {n}" for side, n in short.items())
    detail = (
        f"too few answers to judge ({told}; gate.min_samples is {needed}): "
        "inconclusive, run longer (validation.speed.duration_s)"
    )
    return Verdict(check, False, None, limit, detail, inconclusive=True)


def check_relative_speed(gate: GateSpec, evidence: Evidence) -> list[Verdict]:
    verdicts = []
    cand, prod = evidence.candidate, evidence.production
    same_replicas = cand.replicas == prod.replicas
    checks = (
        ("p95 TTFT / production", gate.max_ttft_p95_ratio, Metric.TTFT_P95, True),
        ("p95 e2e / production", gate.max_e2e_p95_ratio, Metric.E2E_P95, True),
        (
            "throughput / production" if same_replicas else "throughput per replica / production",
            gate.min_throughput_ratio,
            Metric.THROUGHPUT,
            False,
        ),
    )
    for label, mine in cand.speed.items():
        theirs = prod.speed.get(label)
        if theirs is None:
            continue
        counts = {"candidate": mine.answered, "production": theirs.answered}
        for name, limit, metric, at_most in checks:
            if limit is None:
                continue
            check = f"{name} @{label}"
            too_few = _too_few(check, limit, counts, gate.min_samples)
            if too_few is not None:
                verdicts.append(too_few)
                continue
            ratio = ratio_interval(metric, mine.rounds, theirs.rounds, confidence=gate.confidence)
            if metric is Metric.THROUGHPUT:
                ratio = ratio.scaled(prod.replicas / cand.replicas)
            verdicts.append(_judge_interval(check, ratio, limit, at_most=at_most, unit="x"))
    return verdicts


def check_absolute_speed(gate: GateSpec, evidence: Evidence) -> list[Verdict]:
    verdicts = []
    slos = (
        (gate.max_ttft_p95_s, Metric.TTFT_P95, True, " s"),
        (gate.max_itl_p95_s, Metric.ITL_P95, True, " s"),
        (gate.max_e2e_p95_s, Metric.E2E_P95, True, " s"),
        (gate.min_throughput_tps, Metric.THROUGHPUT, False, " tok/s"),
    )
    for label, mine in evidence.candidate.speed.items():
        for limit, metric, at_most, unit in slos:
            if limit is None:
                continue
            check = f"{'throughput' if metric is Metric.THROUGHPUT else metric.value} @{label}"
            too_few = _too_few(check, limit, {"candidate": mine.answered}, gate.min_samples)
            if too_few is not None:
                verdicts.append(too_few)
                continue
            found = interval_of(metric, mine.rounds, confidence=gate.confidence)
            verdicts.append(_judge_interval(check, found, limit, at_most=at_most, unit=unit))
    return verdicts


def check_cost(gate: GateSpec, evidence: Evidence) -> list[Verdict]:
    """The candidate's $/1M output tokens against production's, level by level.

    Each side pays its own replicas at its environment's prices, over the throughput it
    showed in this run; a side without a price cannot pass (the check could not be made)."""
    limit = gate.max_cost_per_mtok_ratio
    if limit is None:
        return []
    verdicts = []
    for label in evidence.candidate.speed:
        if label not in evidence.production.speed:
            continue
        check = f"$/1M output tokens / production @{label}"
        unpriced = [
            name
            for name, side in (
                ("candidate", evidence.candidate),
                ("production", evidence.production),
            )
            if side.cost_per_hour is None
        ]
        if unpriced:
            detail = f"no price for the {' and '.join(unpriced)} side; add costs: to the spec"
            verdicts.append(Verdict(check, False, None, limit, detail))
            continue
        verdicts.append(_cost_verdict(check, gate, evidence, label))
    return verdicts


def _cost_verdict(check: str, gate: GateSpec, evidence: Evidence, label: str) -> Verdict:
    """Price per token is price per hour over throughput, so the ratio of prices is the
    ratio of hourly prices times production's throughput over the candidate's: the
    interval of that throughput ratio carries over."""
    limit = gate.max_cost_per_mtok_ratio
    assert limit is not None
    mine, theirs = evidence.candidate.speed[label], evidence.production.speed[label]
    counts = {"candidate": mine.answered, "production": theirs.answered}
    too_few = _too_few(check, limit, counts, gate.min_samples)
    if too_few is not None:
        return too_few
    hourly = _ratio(evidence.candidate.cost_per_hour or 0, evidence.production.cost_per_hour or 0)
    speed = ratio_interval(
        Metric.THROUGHPUT, theirs.rounds, mine.rounds, confidence=gate.confidence
    )
    return _judge_interval(check, speed.scaled(hourly), limit, at_most=True, unit="x")


GATE_CHECKS: Sequence[GateCheck] = (
    check_quality,
    check_retrieval,
    check_agreement,
    check_errors,
    check_relative_speed,
    check_absolute_speed,
    check_cost,
)


def judge_gate(
    gate: GateSpec, evidence: Evidence, *, checks: Sequence[GateCheck] = GATE_CHECKS
) -> list[Verdict]:
    """Every verdict of every check; pure. The candidate passes when all pass."""
    return [verdict for check in checks for verdict in check(gate, evidence)]


def passed(verdicts: Sequence[Verdict]) -> bool:
    return all(v.passed for v in verdicts)


def outcome_of(verdicts: Sequence[Verdict]) -> Outcome:
    """Fail when any check failed; else inconclusive when any could not tell; else pass."""
    outcomes = {v.outcome for v in verdicts}
    for worst in (Outcome.FAIL, Outcome.INCONCLUSIVE):
        if worst in outcomes:
            return worst
    return Outcome.PASS
