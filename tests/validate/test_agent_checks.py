"""Golden tasks of agents, pure parts: the answer contract (``llmfleet`` extension), the
``retrieved`` and ``called`` checks, the retrieval gate against production, the suite's
new fields at their line, and what staging must run for a candidate agent."""

from __future__ import annotations

import json
from pathlib import Path
from textwrap import dedent
from typing import Any

import pytest

from llmfleet.errors import SpecError, ValidationError
from llmfleet.releases.agent_staging import agent_indexes, with_dependencies
from llmfleet.spec import load_spec, load_spec_text
from llmfleet.spec.validation import GateSpec
from llmfleet.validate.answers import Answer, Source, ToolCall, read_answer
from llmfleet.validate.gate import Evidence, SideMetrics, judge_gate, outcome_of
from llmfleet.validate.quality import judge_case, retrieval_rate
from llmfleet.validate.suites import parse_suite

SUITE = """\
cases:
  - name: roll-back
    prompt: How do I roll back?
    checks:
      - contains: rollback
      - retrieved: docs/releases.md
        top_k: 2
      - called: search_docs
        arguments: {index: docs}
"""


def _no_similarity(first: str, second: str) -> float:
    return 0.0


def _completion(extension: Any = None, **more: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "object": "chat.completion",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Use rollback."}}],
        **more,
    }
    if extension is not None:
        body["llmfleet"] = extension
    return body


def _call(name: str, arguments: Any) -> dict[str, Any]:
    raw = arguments if isinstance(arguments, str) else json.dumps(arguments)
    return {"id": "call_1", "type": "function", "function": {"name": name, "arguments": raw}}


def test_the_extension_is_read_as_sources_best_first_and_tool_calls_in_order() -> None:
    answer = read_answer(
        _completion(
            {
                "sources": [
                    {"filename": "docs/releases.md", "score": 0.8, "text": "..."},
                    {"filename": "docs/keys.md", "file_id": "docs/keys.md#0"},
                ],
                "tool_calls": [_call("search_docs", {"query": "q"}), _call("clock", "")],
            }
        )
    )
    assert answer.text == "Use rollback."
    assert answer.sources == (Source("docs/releases.md", 0.8), Source("docs/keys.md"))
    assert answer.tool_calls == (
        ToolCall("search_docs", {"query": "q"}),
        ToolCall("clock", {}),
    )
    assert read_answer(_completion()) == Answer("Use rollback.")  # a model: nothing reported


@pytest.mark.parametrize(
    ("extension", "reason"),
    [
        ("yes", "not an object"),
        ({"sources": {"a": 1}}, "expected a list"),
        ({"sources": [{"score": 1}]}, "sources[0] needs a filename"),
        ({"sources": [{"filename": "a", "score": "high"}]}, "sources[0].score"),
        ({"tool_calls": [{"type": "function"}]}, "tool_calls[0] needs function.name"),
    ],
)
def test_a_malformed_extension_fails_the_agent_checks_with_its_reason(
    extension: Any, reason: str
) -> None:
    """The text checks still judge the text; the agent's checks say what is malformed."""
    suite = parse_suite(SUITE, filename="suite.yaml")
    result = judge_case(suite.cases[0], read_answer(_completion(extension)), _no_similarity)
    assert [f.split(":")[0] for f in result.failures] == ["retrieved", "called"]
    assert all(reason in f and "'llmfleet' object is malformed" in f for f in result.failures)


def test_retrieved_needs_the_document_within_top_k_and_called_the_arguments() -> None:
    suite = parse_suite(SUITE, filename="suite.yaml")
    case = suite.cases[0]

    def judged(sources: list[str], calls: list[dict[str, Any]]) -> tuple[str, ...]:
        extension = {"sources": [{"filename": s} for s in sources], "tool_calls": calls}
        return judge_case(case, read_answer(_completion(extension)), _no_similarity).failures

    good = [_call("search_docs", {"query": "roll back", "index": "docs"})]
    assert judged(["docs/keys.md", "docs/releases.md"], good) == ()
    (late,) = judged(["a.md", "b.md", "docs/releases.md"], good)
    assert late == "retrieved: 'docs/releases.md' is not among the top 2 sources " + (
        "(got a.md, b.md)"
    )
    (wrong_args,) = judged(["docs/releases.md"], [_call("search_docs", {"index": "faq"})])
    assert "never with the arguments {'index': 'docs'}" in wrong_args
    (not_json,) = judged(["docs/releases.md"], [_call("search_docs", "{oops")])
    assert wrong_args.startswith("called:") and not_json.startswith("called:")
    (other_tool,) = judged(["docs/releases.md"], [_call("clock", {})])
    assert other_tool == "called: did not call 'search_docs' (called: clock)"
    missing = judge_case(case, Answer("a rollback"), _no_similarity).failures
    assert missing == (
        "retrieved: the answer reports no sources (llmfleet.sources)",
        "called: the answer reports no tool calls (llmfleet.tool_calls)",
    )


def test_retrieval_rate_counts_retrieved_checks_only() -> None:
    suite = parse_suite(SUITE, filename="suite.yaml")
    hit = read_answer(_completion({"sources": [{"filename": "docs/releases.md"}]}))
    results = [judge_case(suite.cases[0], a, _no_similarity) for a in (hit, Answer("rollback"))]
    assert [r.retrieval for r in results] == [(True,), (False,)]
    assert retrieval_rate(results) == 0.5
    assert retrieval_rate([judge_case(suite.cases[0], "x", _no_similarity)]) == 0.0
    assert retrieval_rate([]) is None


def _evidence(candidate: float | None, production: float | None) -> Evidence:
    return Evidence(
        SideMetrics(quality_pass_rate=1.0, retrieval_rate=candidate),
        SideMetrics(quality_pass_rate=1.0, retrieval_rate=production),
    )


def test_an_agent_that_retrieves_worse_than_production_fails_the_gate() -> None:
    """Even when the pass-rate threshold tolerates failed cases, retrieving less often
    than production's agent on the same tasks fails; a set tolerance allows a drop."""
    gate = GateSpec(min_quality_pass_rate=0.5, max_ttft_p95_ratio=None, min_throughput_ratio=None)
    worse = judge_gate(gate, _evidence(0.5, 0.75))
    (verdict,) = [v for v in worse if v.check == "retrieval hit rate vs production"]
    assert not verdict.passed and outcome_of(worse).value == "fail"
    assert verdict.detail == "50% of expected sources found in the top k, production 75%"
    assert outcome_of(judge_gate(gate, _evidence(0.75, 0.75))).value == "pass"
    lenient = gate.model_copy(update={"max_retrieval_drop": 0.25})
    assert outcome_of(judge_gate(lenient, _evidence(0.5, 0.75))).value == "pass"
    off = gate.model_copy(update={"max_retrieval_drop": None})
    assert outcome_of(judge_gate(off, _evidence(0.0, 1.0))).value == "pass"
    checks = {v.check for v in judge_gate(gate, _evidence(0.5, None))}  # a new agent
    assert "retrieval hit rate vs production" not in checks


def test_a_gate_dumps_as_before_unless_the_retrieval_limit_is_set() -> None:
    """Candidate hashes and recorded revisions of model services do not change."""
    assert "max_retrieval_drop" not in GateSpec().model_dump(mode="json")
    assert GateSpec(max_retrieval_drop=0.1).model_dump()["max_retrieval_drop"] == 0.1


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "cases: [{name: a, prompt: p, checks: [{retrieved: x.md, top_k: 0}]}]",
            "s.yaml:1:57: cases.0.checks.0.top_k: Input should be greater than or equal to 1",
        ),
        (
            "cases: [{name: a, prompt: p, checks: [{contains: x, top_k: 2}]}]",
            "s.yaml:1:39: cases.0.checks.0: top_k goes with retrieved:",
        ),
        (
            "cases: [{name: a, prompt: p, checks: [{regex: x, arguments: {a: 1}}]}]",
            "s.yaml:1:39: cases.0.checks.0: arguments go with called:",
        ),
        (
            "cases: [{name: a, prompt: p, checks: [{retrieved: x.md, called: search}]}]",
            "needs exactly one of contains, regex, exact, json_schema, similar_to, retrieved, "
            "called; got ['retrieved', 'called']",
        ),
    ],
)
def test_agent_checks_that_are_malformed_name_file_and_line(text: str, expected: str) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_suite(text, filename="s.yaml")
    assert expected in caught.value.message


AGENTS = """\
    services:
      chat: {model: "sim:tiny", engine: {kind: sim, version: "1.2.0"}}
      embed: {model: "sim:e", engine: {kind: sim, version: "1.2.0"}}
      unused: {model: "sim:u", engine: {kind: sim, version: "1.2.0"}}
    indexes:
      docs: {embedding: embed, dimension: 8}
    agents:
      front:
        command: [serve, "{port}"]
        models: [helper]
        validation: {quality: suite.yaml, speed: null, gate: {max_retrieval_drop: 0.1}}
      helper:
        command: [serve, "{port}"]
        models: [chat, embed]
        indexes: [docs]
"""


def test_staging_runs_an_agent_with_what_it_calls_and_its_indexes_embedders() -> None:
    """An agent that calls an agent brings that one's models and embedding service, each
    once; a model service brings nothing; the agent's suite and gate are on its service."""
    loaded = load_spec_text(dedent(AGENTS))
    staging = loaded.resolved.environment("staging")
    assert with_dependencies(staging, loaded.spec, ["front"]) == [
        "front",
        "helper",
        "chat",
        "embed",
    ]
    assert with_dependencies(staging, loaded.spec, ["chat"]) == ["chat"]
    assert agent_indexes(staging, ["front", "helper", "chat"]) == ["docs"]
    validation = staging.services["front"].validation
    assert validation is not None and validation.quality == "suite.yaml"
    assert validation.speed is None and validation.gate.max_retrieval_drop == 0.1
    front = staging.services["front"].agent
    # the runtime holds the program only: a new suite (or scaling) replaces nothing
    assert front is not None and "validation" not in front.model_dump()


def test_an_agents_missing_suite_is_reported_where_the_agent_names_it(tmp_path: Path) -> None:
    spec = tmp_path / "fleet.yaml"
    spec.write_text(dedent(AGENTS).replace("suite.yaml", "golden.yaml"))
    with pytest.raises(SpecError) as caught:
        load_spec(spec)
    (problem,) = caught.value.problems
    assert problem.render().startswith(f"{spec}:11:")
    assert "agents.front.validation.quality: quality suite golden.yaml does not exist" in (
        problem.render()
    )
