"""How sure a speed figure is: bootstrap confidence intervals over rounds; pure.

A level's figures come from a few rounds of a few seconds each, and a shared
machine slows whole rounds at once (production's own throughput has moved from
90 to 29 tok/s between runs). So the resampling is in two stages: rounds are
drawn with replacement (the noise between rounds), then the answers within each
drawn round (the noise between requests). A ratio draws the same round numbers on
both sides: production and candidate ran back to back in each round, so a slow
round slows both, and pairing keeps that shared slowdown out of the ratio.

Deterministic: the generator is seeded, so the same samples give the same
interval (and the gate the same verdict). numpy is imported when one is computed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from llmfleet.validate.stats import RequestSample, Round

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    Values = npt.NDArray[np.float64]
    Picks = npt.NDArray[np.int64]

RESAMPLES = 1000


class Metric(StrEnum):
    """A speed figure that can be bootstrapped, as the summaries define it."""

    THROUGHPUT = "output tokens/s"
    TTFT_P95 = "p95 TTFT"
    E2E_P95 = "p95 e2e"
    ITL_P95 = "p95 inter-token"


@dataclass(frozen=True)
class Interval:
    """A figure and its confidence interval; all NaN when nothing was measured."""

    point: float
    low: float
    high: float

    def show(self, unit: str = "") -> str:
        if math.isnan(self.point):
            return "no measurement"
        if math.isnan(self.low) or self.low == self.high == self.point:
            return f"{self.point:.3g}{unit}"
        return f"{self.point:.3g}{unit} [{self.low:.3g}, {self.high:.3g}]"

    def scaled(self, factor: float) -> Interval:
        return Interval(self.point * factor, self.low * factor, self.high * factor)


NOTHING = Interval(math.nan, math.nan, math.nan)


def _per_request(metric: Metric, sample: RequestSample) -> list[float]:
    """The values one request adds to ``metric`` (its tokens, or its latencies)."""
    if metric is Metric.THROUGHPUT:
        return [float(sample.output_tokens if sample.ok else 0)]
    if not sample.ok:
        return []
    if metric is Metric.TTFT_P95:
        return [] if sample.ttft is None else [sample.ttft]
    if metric is Metric.E2E_P95:
        return [] if sample.e2e is None else [sample.e2e]
    return sample.inter_token_latencies


def _unit_values(metric: Metric, round_: Round) -> Values:
    """The values of one round's units: per request for all metrics but ITL, whose
    units are the gaps between tokens (many per request)."""
    import numpy as np

    return np.array([v for s in round_.samples for v in _per_request(metric, s)], dtype=float)


def _statistic(metric: Metric) -> Callable[[Sequence[Values], Sequence[float]], float]:
    import numpy as np

    def throughput(values: Sequence[Values], durations: Sequence[float]) -> float:
        return float(sum(v.sum() for v in values)) / max(sum(durations), 1e-9)

    def p95(values: Sequence[Values], _durations: Sequence[float]) -> float:
        pooled = np.concatenate(values) if values else np.array([])
        return float(np.percentile(pooled, 95)) if pooled.size else math.nan

    return throughput if metric is Metric.THROUGHPUT else p95


@dataclass(frozen=True)
class _Side:
    values: list[Values]
    durations: list[float]

    @classmethod
    def of(cls, metric: Metric, rounds: Sequence[Round]) -> _Side:
        return cls([_unit_values(metric, r) for r in rounds], [r.duration_s for r in rounds])

    def draw(self, rng: np.random.Generator, picks: Picks) -> tuple[list[Values], list[float]]:
        """The picked rounds, each with its units drawn again with replacement."""
        drawn = []
        for index in picks:
            units = self.values[int(index)]
            drawn.append(units[rng.integers(0, units.size, units.size)] if units.size else units)
        return drawn, [self.durations[int(i)] for i in picks]


def interval_of(
    metric: Metric, rounds: Sequence[Round], *, confidence: float = 0.95, seed: int = 0
) -> Interval:
    """``metric`` over ``rounds`` with its two-stage bootstrap interval."""
    return _bootstrap(metric, [rounds], lambda stats: stats[0], confidence=confidence, seed=seed)


def ratio_interval(
    metric: Metric,
    numerator: Sequence[Round],
    denominator: Sequence[Round],
    *,
    confidence: float = 0.95,
    seed: int = 0,
) -> Interval:
    """``metric`` of ``numerator`` over that of ``denominator``, rounds paired by number
    when both ran the same count (they alternated), drawn apart otherwise."""

    def ratio(stats: Sequence[float]) -> float:
        top, bottom = stats
        return top / bottom if bottom > 0 and not math.isnan(top) else math.nan

    return _bootstrap(metric, [numerator, denominator], ratio, confidence=confidence, seed=seed)


def _bootstrap(
    metric: Metric,
    sides: Sequence[Sequence[Round]],
    combine: Callable[[Sequence[float]], float],
    *,
    confidence: float,
    seed: int,
) -> Interval:
    import numpy as np

    if any(not rounds for rounds in sides):
        return NOTHING
    statistic = _statistic(metric)
    data = [_Side.of(metric, rounds) for rounds in sides]
    point = combine([statistic(d.values, d.durations) for d in data])
    if math.isnan(point):
        return NOTHING
    rng = np.random.default_rng(seed)
    paired = len({len(rounds) for rounds in sides}) == 1
    draws = np.empty(RESAMPLES)
    for number in range(RESAMPLES):
        shared = rng.integers(0, len(sides[0]), len(sides[0]))
        stats = []
        for side, rounds in zip(data, sides, strict=True):
            picks = shared if paired else rng.integers(0, len(rounds), len(rounds))
            stats.append(statistic(*side.draw(rng, picks)))
        draws[number] = combine(stats)
    finite = draws[~np.isnan(draws)]
    if not finite.size:
        return Interval(point, math.nan, math.nan)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(finite, [tail, 100 - tail])
    return Interval(point, float(low), float(high))
