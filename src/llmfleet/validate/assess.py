"""Assess one candidate service against production: run the suites, judge the gate.

The result (``ServiceReport``) holds everything the terminal summary, the JSON
and the HTML report show. Side effects: HTTP to the two gateways only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmfleet.costs.formulas import per_million
from llmfleet.spec.validation import GateSpec, ValidationSpec, impossible_thresholds
from llmfleet.validate.changes import SpecChange
from llmfleet.validate.gate import (
    Evidence,
    Outcome,
    SideMetrics,
    Verdict,
    judge_gate,
    outcome_of,
    passed,
)
from llmfleet.validate.quality import (
    Agreement,
    CaseResult,
    judge_agreement,
    judge_case,
    pass_rate,
    retrieval_rate,
)
from llmfleet.validate.runner import Progress, Reply, ask_cases, measure_speed
from llmfleet.validate.similarity import Embedder, ServedSimilarity
from llmfleet.validate.stats import LoadSummary
from llmfleet.validate.suites import QualitySuite

Similarity = Callable[[str, str], float]
REFERENCE_SIMILARITY = "all-MiniLM-L6-v2 in numpy (the reference model, in this process)"


@dataclass(frozen=True)
class ServiceReport:
    service: str
    candidate_hash: str
    verdicts: tuple[Verdict, ...]
    candidate_quality: tuple[CaseResult, ...] = ()
    production_quality: tuple[CaseResult, ...] = ()
    agreement: Agreement | None = None
    candidate_speed: dict[str, LoadSummary] = field(default_factory=dict)
    production_speed: dict[str, LoadSummary] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    costs: SideCosts | None = None
    changes: tuple[SpecChange, ...] = ()
    """what the candidate changes against production's running spec"""
    similarity: str = REFERENCE_SIMILARITY
    """what judged similar_to checks and agreement"""

    @property
    def passed(self) -> bool:
        return passed(self.verdicts)

    @property
    def outcome(self) -> Outcome:
        """pass, fail, or inconclusive (speed too noisy or too few answers to tell)."""
        return outcome_of(self.verdicts)

    def cost_per_mtok(self, side: str) -> dict[str, float | None]:
        """Per level, the side's price per million output tokens (None: unpriced or idle)."""
        if self.costs is None:
            return {}
        hourly = self.costs.candidate if side == "candidate" else self.costs.production
        speed = self.candidate_speed if side == "candidate" else self.production_speed
        return {
            label: None if hourly is None else per_million(hourly, s.output_tokens_per_s)
            for label, s in speed.items()
        }

    def to_json(self) -> dict[str, Any]:
        def cases(results: tuple[CaseResult, ...]) -> list[dict[str, Any]]:
            return [
                {
                    "name": r.name,
                    "passed": r.passed,
                    "answer": r.answer,
                    "failures": list(r.failures),
                    "sources": list(r.sources),
                    "tool_calls": list(r.tool_calls),
                }
                for r in results
            ]

        return {
            "service": self.service,
            "candidate_hash": self.candidate_hash,
            "passed": self.passed,
            "outcome": self.outcome.value,
            "changes": [c.to_json() for c in self.changes],
            "verdicts": [v.to_json() for v in self.verdicts],
            "quality": {
                "candidate": cases(self.candidate_quality),
                "production": cases(self.production_quality),
            },
            "agreement": None
            if self.agreement is None
            else {"rate": self.agreement.rate, "scores": list(self.agreement.scores)},
            "retrieval": {
                "candidate": retrieval_rate(self.candidate_quality),
                "production": retrieval_rate(self.production_quality),
            },
            "speed": {
                "candidate": {k: v.to_json() for k, v in self.candidate_speed.items()},
                "production": {k: v.to_json() for k, v in self.production_speed.items()},
            },
            "warnings": list(self.warnings),
            "similarity": self.similarity,
            "costs": None
            if self.costs is None
            else {
                "currency": self.costs.currency,
                "per_hour": {
                    "candidate": self.costs.candidate,
                    "production": self.costs.production,
                },
                "per_million_output_tokens": {
                    "candidate": self.cost_per_mtok("candidate"),
                    "production": self.cost_per_mtok("production"),
                },
            },
        }


class LazySimilarity:
    """Loads the embedding model on first use only; one per validation run."""

    def __init__(self) -> None:
        self._embedder: Embedder | None = None

    def __call__(self, first: str, second: str) -> float:
        if self._embedder is None:
            self._embedder = Embedder.load()
        return self._embedder.similarity(first, second)


class Similarities:
    """What each service's ``similar_to`` checks and agreement use, one per validation
    run: the fleet's embedding service its validation names (``similarity:``), reached
    at production's gateway, else the reference model, loaded on first use."""

    def __init__(self, *, production_url: str, api_key: str | None) -> None:
        self._url = production_url
        self._api_key = api_key
        self._reference = LazySimilarity()
        self._served: dict[str, ServedSimilarity] = {}

    def pick(self, validation: ValidationSpec) -> tuple[Similarity, str]:
        """The similarity for ``validation``, and what it is, as the report says it."""
        name = validation.similarity
        if name is None:
            return self._reference, REFERENCE_SIMILARITY
        if name not in self._served:
            self._served[name] = ServedSimilarity(
                base_url=self._url, model=name, api_key=self._api_key
            )
        return self._served[name], f"the fleet's service {name} (production's gateway)"

    def close(self) -> None:
        for served in self._served.values():
            served.close()


@dataclass(frozen=True)
class SideCosts:
    """What each side's replicas cost per hour at its environment's prices (None: unpriced)."""

    currency: str
    candidate: float | None
    production: float | None


@dataclass(frozen=True)
class Sides:
    """The gateways to compare: production's may be absent (a new service)."""

    candidate_url: str
    production_url: str | None
    api_key: str | None = None  # for services that require one; valid on both sides
    candidate_replicas: int = 1
    production_replicas: int = 1
    """Staging often runs fewer replicas than production: production then gets its load
    times production/candidate replicas, and throughput is compared per replica."""
    costs: SideCosts | None = None


def _judge_replies(
    suite: QualitySuite, replies: list[Reply], similarity: Similarity
) -> tuple[CaseResult, ...]:
    results = []
    for case, reply in zip(suite.cases, replies, strict=True):
        if reply.error:
            results.append(CaseResult(case.name, "", (reply.error,)))
        else:
            results.append(judge_case(case, reply.answer or reply.text, similarity))
    return tuple(results)


async def assess_service(
    service: str,
    *,
    candidate_hash: str,
    validation: ValidationSpec,
    suite: QualitySuite | None,
    sides: Sides,
    similarity: Similarity,
    changes: tuple[SpecChange, ...] = (),
    progress: Progress | None = None,
    similarity_source: str = REFERENCE_SIMILARITY,
) -> ServiceReport:
    """Run the quality then the speed suite on both sides, and judge the gate;
    ``progress`` hears how the suites are getting on."""
    gate = validation.gate
    say = progress or (lambda _line: None)
    quality = await _quality(service, suite, sides, gate, similarity, say)
    speed: dict[str, dict[str, LoadSummary]] = {"candidate": {}, "production": {}}
    if validation.speed is not None:
        urls = {"candidate": sides.candidate_url}
        if sides.production_url:
            urls = {"production": sides.production_url, **urls}
        scale = {"production": sides.production_replicas / sides.candidate_replicas}
        speed.update(
            await measure_speed(
                urls,
                model=service,
                suite=validation.speed,
                api_key=sides.api_key,
                scale=scale,
                progress=say,
            )
        )
    cand_q, prod_q, agreement = quality
    evidence = Evidence(
        candidate=SideMetrics(
            pass_rate(cand_q) if suite else None,
            speed["candidate"],
            sides.candidate_replicas,
            cost_per_hour=sides.costs.candidate if sides.costs else None,
            retrieval_rate=retrieval_rate(cand_q),
        ),
        production=SideMetrics(
            pass_rate(prod_q) if prod_q else None,
            speed["production"],
            sides.production_replicas,
            cost_per_hour=sides.costs.production if sides.costs else None,
            retrieval_rate=retrieval_rate(prod_q),
        ),
        agreement=agreement.rate if agreement else None,
    )
    return ServiceReport(
        service,
        candidate_hash,
        tuple(judge_gate(gate, evidence)),
        cand_q,
        prod_q,
        agreement,
        speed["candidate"],
        speed["production"],
        tuple(impossible_thresholds(gate)) + _replica_note(sides, validation),
        sides.costs,
        changes,
        similarity_source,
    )


def _replica_note(sides: Sides, validation: ValidationSpec) -> tuple[str, ...]:
    if (
        validation.speed is None
        or sides.production_url is None
        or sides.candidate_replicas == sides.production_replicas
    ):
        return ()
    factor = sides.production_replicas / sides.candidate_replicas
    return (
        f"staging runs {sides.candidate_replicas} replica(s), production "
        f"{sides.production_replicas}: production got {factor:g}x the load at each level "
        "(the same per replica), and throughput is compared per replica",
    )


async def _quality(
    service: str,
    suite: QualitySuite | None,
    sides: Sides,
    gate: GateSpec,
    similarity: Similarity,
    progress: Progress,
) -> tuple[tuple[CaseResult, ...], tuple[CaseResult, ...], Agreement | None]:
    if suite is None:
        return (), (), None
    candidate = await ask_cases(
        sides.candidate_url,
        service,
        suite.cases,
        api_key=sides.api_key,
        progress=progress,
        side="candidate",
    )
    cand_results = _judge_replies(suite, candidate, similarity)
    if sides.production_url is None:
        return cand_results, (), None
    production = await ask_cases(
        sides.production_url,
        service,
        suite.cases,
        api_key=sides.api_key,
        progress=progress,
        side="production",
    )
    prod_results = _judge_replies(suite, production, similarity)
    agreement = None
    if gate.min_agreement is not None:
        agreement = judge_agreement(
            [r.text for r in candidate],
            [r.text for r in production],
            threshold=gate.agreement_similarity,
            similarity=similarity,
        )
    return cand_results, prod_results, agreement


def suite_path(spec_dir: Path, validation: ValidationSpec) -> Path | None:
    return None if validation.quality is None else (spec_dir / validation.quality)
