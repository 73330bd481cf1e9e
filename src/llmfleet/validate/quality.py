"""Quality checks of answers: a pipeline of small callables with one signature; pure.

Each check kind is a function ``(answer, check, similarity) -> failure or None``;
``similarity`` is the embedding model's cosine similarity, passed in so the
checks stay pure and a test can use a fake. Agreement compares candidate and
production answers to the same prompts. An agent's answer also carries what it
retrieved and the tools it called (``validate.answers``); the ``retrieved`` and
``called`` checks judge those.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import jsonschema

from llmfleet.validate.answers import EXTENSION, Answer
from llmfleet.validate.suites import Case, Check

Similarity = Callable[[str, str], float]
CheckFn = Callable[[Answer, Check, Similarity], "str | None"]


def _fold(text: str, check: Check) -> str:
    return text.casefold() if check.ignore_case else text


def check_contains(reply: Answer, check: Check, similarity: Similarity) -> str | None:
    assert check.contains is not None
    if _fold(check.contains, check) in _fold(reply.text, check):
        return None
    return f"does not contain {check.contains!r}"


def check_regex(reply: Answer, check: Check, similarity: Similarity) -> str | None:
    assert check.regex is not None
    flags = re.IGNORECASE if check.ignore_case else 0
    return None if re.search(check.regex, reply.text, flags) else f"does not match /{check.regex}/"


def check_exact(reply: Answer, check: Check, similarity: Similarity) -> str | None:
    assert check.exact is not None
    if _fold(reply.text.strip(), check) == _fold(check.exact.strip(), check):
        return None
    return f"is not exactly {check.exact!r}"


def check_json_schema(reply: Answer, check: Check, similarity: Similarity) -> str | None:
    assert check.json_schema is not None
    try:
        value = json.loads(_strip_fence(reply.text))
    except ValueError as exc:
        return f"is not JSON: {exc}"
    try:
        jsonschema.validate(value, check.json_schema)
    except jsonschema.ValidationError as exc:
        return f"does not validate against the schema: {exc.message}"
    return None


def check_similar_to(reply: Answer, check: Check, similarity: Similarity) -> str | None:
    assert check.similar_to is not None
    score = similarity(reply.text, check.similar_to)
    if score >= check.min_similarity:
        return None
    return f"similarity {score:.2f} to the reference is below {check.min_similarity}"


def check_retrieved(reply: Answer, check: Check, similarity: Similarity) -> str | None:
    assert check.retrieved is not None
    if reply.sources is None:
        return reply.malformed or f"the answer reports no sources ({EXTENSION}.sources)"
    top = [s.document for s in reply.sources[: check.top_k]]
    if check.retrieved in top:
        return None
    shown = ", ".join(top[:5]) + (", ..." if len(top) > 5 else "") if top else "nothing"
    return f"{check.retrieved!r} is not among the top {check.top_k} sources (got {shown})"


def check_called(reply: Answer, check: Check, similarity: Similarity) -> str | None:
    assert check.called is not None
    if reply.tool_calls is None:
        return reply.malformed or f"the answer reports no tool calls ({EXTENSION}.tool_calls)"
    calls = [c for c in reply.tool_calls if c.name == check.called]
    if not calls:
        made = ", ".join(dict.fromkeys(c.name for c in reply.tool_calls)) or "none"
        return f"did not call {check.called!r} (called: {made})"
    wanted = check.arguments or {}
    if any(_has(call.arguments, wanted) for call in calls):
        return None
    return f"called {check.called!r}, never with the arguments {wanted}"


def _has(arguments: Mapping[str, object] | None, wanted: Mapping[str, object]) -> bool:
    return arguments is not None and all(arguments.get(k) == v for k, v in wanted.items())


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
    "retrieved": check_retrieved,
    "called": check_called,
}


@dataclass(frozen=True)
class CaseResult:
    name: str
    answer: str
    failures: tuple[str, ...]
    retrieval: tuple[bool, ...] = ()
    """whether each ``retrieved`` check of the case was met, in order"""
    sources: tuple[str, ...] = ()
    tool_calls: tuple[str, ...] = ()
    """what the agent reported (documents best first, tools in call order), for reports"""

    @property
    def passed(self) -> bool:
        return not self.failures


def judge_case(case: Case, answer: Answer | str, similarity: Similarity) -> CaseResult:
    """Run every check of ``case`` on ``answer``; pure given ``similarity``."""
    reply = answer if isinstance(answer, Answer) else Answer(answer)
    failures = []
    retrieval = []
    for check in case.checks:
        failure = CHECKS[check.kind](reply, check, similarity)
        if check.kind == "retrieved":
            retrieval.append(failure is None)
        if failure is not None:
            failures.append(f"{check.kind}: {failure}")
    return CaseResult(
        case.name,
        reply.text,
        tuple(failures),
        tuple(retrieval),
        tuple(s.document for s in reply.sources or ()),
        tuple(c.name for c in reply.tool_calls or ()),
    )


def pass_rate(results: Sequence[CaseResult]) -> float:
    return sum(r.passed for r in results) / len(results) if results else 1.0


def retrieval_rate(results: Sequence[CaseResult]) -> float | None:
    """The share of ``retrieved`` checks met over every case; None when there are none."""
    met = [hit for r in results for hit in r.retrieval]
    return sum(met) / len(met) if met else None


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
