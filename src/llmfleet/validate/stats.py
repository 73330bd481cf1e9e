"""Numbers from load: percentiles and per-level summaries; pure.

A ``RequestSample`` is what the load generator measured for one request; the
summaries here turn many of them into the figures a gate judges.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any


@dataclass(frozen=True)
class RequestSample:
    """One request as measured by the client. Times in seconds from its send."""

    ok: bool
    ttft: float | None = None
    e2e: float | None = None
    token_times: tuple[float, ...] = ()
    output_tokens: int = 0
    error: str = ""
    input_tokens: int = 0
    """the prompt's tokens as the engine counted them (its usage); 0 when it said nothing"""

    @property
    def inter_token_latencies(self) -> list[float]:
        times = self.token_times
        return [later - earlier for earlier, later in itertools.pairwise(times)]


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100) by linear interpolation; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass(frozen=True)
class Distribution:
    p50: float
    p95: float
    p99: float
    mean: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Distribution:
        mean = sum(values) / len(values) if values else math.nan
        return cls(percentile(values, 50), percentile(values, 95), percentile(values, 99), mean)


@dataclass(frozen=True)
class Round:
    """One slice of a level on one side: what was sent and how long it took.

    Rounds are kept apart (not only pooled) because they are the unit of noise: a
    busy machine slows a whole round, so intervals resample rounds (validate.intervals)."""

    samples: tuple[RequestSample, ...]
    duration_s: float


@dataclass(frozen=True)
class LoadSummary:
    """One load level (a concurrency or a rate) on one side (production or candidate)."""

    label: str
    requests: int
    errors: int
    duration_s: float
    ttft: Distribution
    itl: Distribution
    e2e: Distribution
    output_tokens_per_s: float
    requests_per_s: float
    samples_ttft: tuple[float, ...] = field(default=(), repr=False)
    samples_e2e: tuple[float, ...] = field(default=(), repr=False)
    input_tokens_per_s: float = 0.0
    rounds: tuple[Round, ...] = field(default=(), repr=False, compare=False)

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    @property
    def answered(self) -> int:
        """Requests that were answered: the samples the speed figures stand on."""
        return self.requests - self.errors

    def to_json(self) -> dict[str, Any]:
        body = asdict(replace(self, rounds=()))
        del body["rounds"]  # every sample again; the per-round figures below say enough
        body["error_rate"] = self.error_rate
        body["rounds_output_tokens_per_s"] = [
            sum(s.output_tokens for s in r.samples if s.ok) / max(r.duration_s, 1e-9)
            for r in self.rounds
        ]
        return body


def summarize(label: str, samples: Sequence[RequestSample], *, duration_s: float) -> LoadSummary:
    """Summarize the samples of one level; ``duration_s`` is the wall time they took."""
    ok = [s for s in samples if s.ok]
    ttfts = [s.ttft for s in ok if s.ttft is not None]
    e2es = [s.e2e for s in ok if s.e2e is not None]
    itls = [gap for s in ok for gap in s.inter_token_latencies]
    tokens = sum(s.output_tokens for s in ok)
    seconds = max(duration_s, 1e-9)
    return LoadSummary(
        label=label,
        requests=len(samples),
        errors=len(samples) - len(ok),
        duration_s=duration_s,
        ttft=Distribution.of(ttfts),
        itl=Distribution.of(itls),
        e2e=Distribution.of(e2es),
        output_tokens_per_s=tokens / seconds,
        requests_per_s=len(ok) / seconds,
        samples_ttft=tuple(ttfts),
        samples_e2e=tuple(e2es),
        input_tokens_per_s=sum(s.input_tokens for s in ok) / seconds,
        rounds=(Round(tuple(samples), duration_s),),
    )


def merge_summaries(
    label: str, parts: Sequence[tuple[Sequence[RequestSample], float]]
) -> LoadSummary:
    """One summary of several rounds of the same level (samples pooled, times added; the
    rounds kept for intervals)."""
    samples = [s for part, _ in parts for s in part]
    pooled = summarize(label, samples, duration_s=sum(seconds for _, seconds in parts))
    return replace(pooled, rounds=tuple(Round(tuple(part), seconds) for part, seconds in parts))
