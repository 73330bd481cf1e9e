"""The release gate: thresholds against measurements -> a verdict per check; pure.

The checks are a pipeline of small callables with one signature
``(gate, evidence) -> verdicts`` (structlog's processors), so adding a check is
adding a function. Relative checks compare the candidate with production as
measured in the same run, level by level; absolute checks compare with the SLOs.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from llmfleet.costs.formulas import per_million
from llmfleet.spec.validation import GateSpec
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


@dataclass(frozen=True)
class Verdict:
    check: str
    passed: bool
    observed: float | None
    limit: float | None
    detail: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


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


def check_errors(gate: GateSpec, evidence: Evidence) -> list[Verdict]:
    return [
        _verdict(f"error rate @{label}", summary.error_rate, gate.max_error_rate, at_most=True)
        for label, summary in evidence.candidate.speed.items()
    ]


def _ratio(candidate: float, production: float) -> float:
    if production <= 0 or math.isnan(production) or math.isnan(candidate):
        return math.nan
    return candidate / production


def check_relative_speed(gate: GateSpec, evidence: Evidence) -> list[Verdict]:
    verdicts = []
    for label, mine in evidence.candidate.speed.items():
        theirs = evidence.production.speed.get(label)
        if theirs is None:
            continue
        pairs = (
            (
                "p95 TTFT / production",
                gate.max_ttft_p95_ratio,
                mine.ttft.p95,
                theirs.ttft.p95,
                True,
            ),
            ("p95 e2e / production", gate.max_e2e_p95_ratio, mine.e2e.p95, theirs.e2e.p95, True),
            (
                "throughput / production"
                if evidence.candidate.replicas == evidence.production.replicas
                else "throughput per replica / production",
                gate.min_throughput_ratio,
                mine.output_tokens_per_s / evidence.candidate.replicas,
                theirs.output_tokens_per_s / evidence.production.replicas,
                False,
            ),
        )
        for name, limit, value, base, at_most in pairs:
            if limit is not None:
                verdicts.append(
                    _verdict(
                        f"{name} @{label}", _ratio(value, base), limit, at_most=at_most, unit="x"
                    )
                )
    return verdicts


def check_absolute_speed(gate: GateSpec, evidence: Evidence) -> list[Verdict]:
    verdicts = []
    for label, mine in evidence.candidate.speed.items():
        slos = (
            ("p95 TTFT", gate.max_ttft_p95_s, mine.ttft.p95, True, " s"),
            ("p95 inter-token", gate.max_itl_p95_s, mine.itl.p95, True, " s"),
            ("p95 e2e", gate.max_e2e_p95_s, mine.e2e.p95, True, " s"),
            ("throughput", gate.min_throughput_tps, mine.output_tokens_per_s, False, " tok/s"),
        )
        for name, limit, value, at_most, unit in slos:
            if limit is not None:
                verdicts.append(
                    _verdict(f"{name} @{label}", value, limit, at_most=at_most, unit=unit)
                )
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
        mine, theirs = (
            evidence.candidate.cost_per_mtok(label),
            evidence.production.cost_per_mtok(label),
        )
        verdicts.append(_verdict(check, _ratio(mine, theirs), limit, at_most=True, unit="x"))
    return verdicts


GATE_CHECKS: Sequence[GateCheck] = (
    check_quality,
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
