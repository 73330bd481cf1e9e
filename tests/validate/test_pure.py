"""Pure parts of validation: stats, gate verdicts, quality checks, suite parsing."""

from __future__ import annotations

import math

import pytest

from llmfleet.errors import ValidationError
from llmfleet.spec.validation import GateSpec, impossible_thresholds
from llmfleet.validate.gate import Evidence, SideMetrics, judge_gate, passed
from llmfleet.validate.quality import judge_agreement, judge_case, pass_rate
from llmfleet.validate.stats import RequestSample, percentile, summarize
from llmfleet.validate.suites import parse_suite


def _no_similarity(first: str, second: str) -> float:
    return 1.0 if first == second else 0.0


def test_percentile_interpolates_and_is_nan_when_empty() -> None:
    """p50 of 1..4 is 2.5; no values give NaN."""
    assert percentile([4, 1, 3, 2], 50) == 2.5
    assert percentile([1, 2, 3, 4, 5], 100) == 5
    assert math.isnan(percentile([], 95))


def test_summarize_counts_errors_tokens_and_inter_token_latency() -> None:
    """Errors are counted apart; throughput counts only answered tokens."""
    ok = RequestSample(ok=True, ttft=0.1, e2e=0.3, token_times=(0.1, 0.2, 0.3), output_tokens=3)
    summary = summarize("c1", [ok, ok, RequestSample(ok=False, error="boom")], duration_s=2.0)
    assert summary.requests == 3 and summary.errors == 1
    assert summary.error_rate == pytest.approx(1 / 3)
    assert summary.output_tokens_per_s == 3.0
    assert summary.itl.p50 == pytest.approx(0.1)


def _side(ttft: float, tps: float, *, errors: int = 0, rate: float = 1.0) -> SideMetrics:
    sample = RequestSample(ok=True, ttft=ttft, e2e=ttft * 2, token_times=(ttft,), output_tokens=1)
    samples = [sample] * 30 + [RequestSample(ok=False)] * errors
    summary = summarize("c1", samples, duration_s=30 / tps)
    return SideMetrics(quality_pass_rate=rate, speed={"c1": summary})


def test_gate_passes_an_equal_candidate_and_fails_a_slower_one() -> None:
    """Relative checks compare with production measured in the same run."""
    gate = GateSpec()
    prod = _side(0.1, 100)
    assert passed(judge_gate(gate, Evidence(_side(0.1, 100), prod)))
    verdicts = judge_gate(gate, Evidence(_side(0.2, 50), prod))
    failed = {v.check for v in verdicts if not v.passed}
    assert failed == {"p95 TTFT / production @c1", "throughput / production @c1"}


def test_gate_checks_errors_quality_agreement_and_absolute_slos() -> None:
    gate = GateSpec(
        min_agreement=0.9, max_ttft_p95_s=0.05, max_ttft_p95_ratio=None, min_throughput_ratio=None
    )
    verdicts = judge_gate(gate, Evidence(_side(0.1, 100, errors=1, rate=0.5), _side(0.1, 100), 0.5))
    failed = {v.check for v in verdicts if not v.passed}
    assert failed == {
        "quality pass rate",
        "agreement with production",
        "error rate @c1",
        "p95 TTFT @c1",
    }


def test_impossible_thresholds_are_warned() -> None:
    gate = GateSpec(min_quality_pass_rate=1.5, max_ttft_p95_s=0)
    warnings = impossible_thresholds(gate)
    assert len(warnings) == 2 and all("can never pass" in w for w in warnings)
    assert impossible_thresholds(GateSpec()) == []


SUITE = """
service: chat
cases:
  - name: capital
    prompt: What is the capital of France?
    checks:
      - contains: paris
        ignore_case: true
      - regex: "^The"
      - json_schema: {type: object}
      - exact: The capital is Paris.
      - similar_to: The capital is Paris.
        min_similarity: 0.5
"""


def test_every_check_kind_judges_an_answer() -> None:
    """Each failing check is named with why; similarity comes from the caller."""
    (case,) = parse_suite(SUITE, filename="s.yaml").cases
    result = judge_case(case, "The capital is Paris.", _no_similarity)
    assert result.failures == (
        "json_schema: is not JSON: Expecting value: line 1 column 1 (char 0)",
    )
    assert not judge_case(case, "Lyon", _no_similarity).passed
    assert pass_rate([result]) == 0.0


def test_json_schema_check_accepts_fenced_json() -> None:
    suite = parse_suite(
        "cases: [{name: j, prompt: x, checks: [{json_schema: {type: object, required: [a]}}]}]",
        filename="s.yaml",
    )
    assert judge_case(suite.cases[0], '```json\n{"a": 1}\n```', _no_similarity).passed
    assert "required" in judge_case(suite.cases[0], '{"b": 1}', _no_similarity).failures[0]


def test_agreement_counts_exact_or_similar_answers() -> None:
    agreement = judge_agreement(
        ["a", "b", "c"], ["a", "x", "c "], threshold=0.9, similarity=_no_similarity
    )
    assert agreement.rate == pytest.approx(2 / 3)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("cases:\n  - name: a\n    prompt: x\n    checks:\n      - contain: y\n", "s.yaml:5:"),
        ("cases:\n  - name: a\n", "s.yaml:2:"),
        ("cases: [\n", "s.yaml:2"),
        ("service: nope\ncases: [{name: a, prompt: x}]\n", "s.yaml:1:1: service: unknown service"),
        ("cases:\n  - name: a\n    prompt: x\n    checks: [{regex: '('}]\n", "invalid regex"),
    ],
)
def test_malformed_suites_name_file_and_line(text: str, expected: str) -> None:
    """A malformed suite or one naming an unknown service is refused with file:line."""
    with pytest.raises(ValidationError) as caught:
        parse_suite(text, filename="s.yaml", services=["chat"])
    assert expected in caught.value.message
