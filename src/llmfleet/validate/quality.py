"""Quality checks of answers: a pipeline of small callables with one signature; pure.

Each check kind is a function ``(answer, check, similarity) -> failure or None``;
``similarity`` is the embedding model's cosine similarity, passed in so the
checks stay pure and a test can use a fake. Agreement compares candidate and
production answers to the same prompts.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import jsonschema

from llmfleet.validate.suites import Case, Check

Similarity = Callable[[str, str], float]
CheckFn = Callable[[str, Check, Similarity], "str | None"]


def _fold(text: str, check: Check) -> str:
    return text.casefold() if check.ignore_case else text


def check_contains(answer: str, check: Check, similarity: Similarity) -> str | None:
    assert check.contains is not None
    if _fold(check.contains, check) in _fold(answer, check):
        return None
    return f"does not contain {check.contains!r}"


def check_regex(answer: str, check: Check, similarity: Similarity) -> str | None:
    assert check.regex is not None
    flags = re.IGNORECASE if check.ignore_case else 0
    return None if re.search(check.regex, answer, flags) else f"does not match /{check.regex}/"


def check_exact(answer: str, check: Check, similarity: Similarity) -> str | None:
    assert check.exact is not None
    if _fold(answer.strip(), check) == _fold(check.exact.strip(), check):
        return None
    return f"is not exactly {check.exact!r}"


def check_json_schema(answer: str, check: Check, similarity: Similarity) -> str | None:
    assert check.json_schema is not None
    try:
        value = json.loads(_strip_fence(answer))
    except ValueError as exc:
        return f"is not JSON: {exc}"
    try:
        jsonschema.validate(value, check.json_schema)
    except jsonschema.ValidationError as exc:
        return f"does not validate against the schema: {exc.message}"
    return None


def check_similar_to(answer: str, check: Check, similarity: Similarity) -> str | None:
    assert check.similar_to is not None
    score = similarity(answer, check.similar_to)
    if score >= check.min_similarity:
        return None
    return f"similarity {score:.2f} to the reference is below {check.min_similarity}"


def _strip_fence(text: str) -> str:
    """Models like to wrap JSON in a markdown fence; the JSON inside is what counts."""
    match = re.search(r"```(?:json)?\s*(.*?)```", text, re.DOTALL)
    return match.group(1) if match else text.strip()


CHECKS: Mapping[str, CheckFn] = {
    "contains": check_contains,
    "regex": check_regex,
    "exact": check_exact,
    "json_schema": check_json_schema,
    "similar_to": check_similar_to,
}


@dataclass(frozen=True)
class CaseResult:
    name: str
    answer: str
    failures: tuple[str, ...]

    @property
    def passed(self) -> bool:
        return not self.failures


def judge_case(case: Case, answer: str, similarity: Similarity) -> CaseResult:
    """Run every check of ``case`` on ``answer``; pure given ``similarity``."""
    failures = []
    for check in case.checks:
        failure = CHECKS[check.kind](answer, check, similarity)
        if failure is not None:
            failures.append(f"{check.kind}: {failure}")
    return CaseResult(case.name, answer, tuple(failures))


def pass_rate(results: Sequence[CaseResult]) -> float:
    return sum(r.passed for r in results) / len(results) if results else 1.0


@dataclass(frozen=True)
class Agreement:
    """How many answers of the candidate match production's, exactly or by similarity."""

    matched: int
    total: int
    scores: tuple[float, ...]

    @property
    def rate(self) -> float:
        return self.matched / self.total if self.total else 1.0


def judge_agreement(
    candidate: Sequence[str], production: Sequence[str], *, threshold: float, similarity: Similarity
) -> Agreement:
    """Pairwise agreement of answers to the same prompts at temperature 0; pure."""
    scores = []
    for mine, theirs in zip(candidate, production, strict=True):
        scores.append(1.0 if mine.strip() == theirs.strip() else similarity(mine, theirs))
    matched = sum(score >= threshold for score in scores)
    return Agreement(matched, len(scores), tuple(scores))
