"""Quality suites: YAML files of cases and checks, parsed with line numbers; pure but for reading.

A suite looks like::

    service: chat               # optional: the service it is written for
    cases:
      - name: capital
        prompt: What is the capital of France?     # or messages: [{role, content}]
        max_tokens: 32
        checks:
          - contains: Paris
          - regex: "(?i)\\\\bparis\\\\b"
          - exact: Paris
          - json_schema: {type: object, required: [city]}
          - similar_to: Paris is the capital of France.
            min_similarity: 0.6

An agent's suite (``agents.NAME.validation.quality``) is the same file: its golden
tasks may also check what the agent retrieved and which tools it called, as the
agent reports them in its answer (``validate.answers``)::

      - name: roll-back
        prompt: How do I roll back?
        checks:
          - contains: rollback
          - retrieved: docs/releases.md   # a source document among the top k
            top_k: 3                      # (default 5)
          - called: search_docs           # a tool it called, with at least
            arguments: {index: docs}      # these arguments (optional)

Every problem is reported at its file, line and column, all at once.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic import ValidationError as PydanticValidationError

from llmfleet.errors import SpecError, ValidationError
from llmfleet.spec.locations import Locations
from llmfleet.spec.parsing import parse_document

CHECK_KINDS = ("contains", "regex", "exact", "json_schema", "similar_to", "retrieved", "called")
AGENT_CHECK_KINDS = ("retrieved", "called")
"""kinds that judge what an agent did (its sources, its tool calls), not its text"""


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Check(_Frozen):
    """One check of an answer; exactly one of the kinds is set."""

    contains: str | None = None
    regex: str | None = None
    exact: str | None = None
    json_schema: dict[str, Any] | None = None
    similar_to: str | None = None
    min_similarity: float = Field(default=0.7, ge=-1)
    ignore_case: bool = False
    retrieved: str | None = Field(default=None, min_length=1)
    """a source document the answer must have among its first ``top_k`` sources"""
    top_k: int = Field(default=5, ge=1)
    called: str | None = Field(default=None, min_length=1)
    """a tool the agent must have called (with at least ``arguments``, when given)"""
    arguments: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Check:
        kinds = [k for k in CHECK_KINDS if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise ValueError(
                f"needs exactly one of {', '.join(CHECK_KINDS)}; got {kinds or 'none'}"
            )
        if self.regex is not None:
            try:
                re.compile(self.regex)
            except re.error as exc:
                raise ValueError(f"invalid regex {self.regex!r}: {exc}") from exc
        if self.arguments is not None and self.called is None:
            raise ValueError("arguments go with called: (the tool whose arguments they are)")
        if "top_k" in self.model_fields_set and self.retrieved is None:
            raise ValueError("top_k goes with retrieved: (the document to find in the top k)")
        return self

    @property
    def kind(self) -> str:
        return next(k for k in CHECK_KINDS if getattr(self, k) is not None)


class Message(_Frozen):
    role: str = Field(pattern=r"^(system|user|assistant)$")
    content: str


class Case(_Frozen):
    name: str = Field(min_length=1)
    prompt: str | None = None
    messages: tuple[Message, ...] | None = None
    max_tokens: int = Field(default=64, ge=1)
    temperature: float = Field(default=0.0, ge=0)
    checks: tuple[Check, ...] = ()

    @model_validator(mode="after")
    def _one_input(self) -> Case:
        if (self.prompt is None) == (self.messages is None):
            raise ValueError("needs exactly one of prompt or messages")
        return self

    def chat_messages(self) -> list[dict[str, str]]:
        if self.messages is not None:
            return [m.model_dump() for m in self.messages]
        return [{"role": "user", "content": self.prompt or ""}]


class QualitySuite(_Frozen):
    service: str | None = None
    cases: tuple[Case, ...] = Field(min_length=1)


def load_suite(path: Path, *, services: Iterable[str] | None = None) -> QualitySuite:
    """Read and check the suite at ``path``; ``ValidationError`` lists every problem.

    ``services`` (the spec's names) lets a suite that names an unknown service be refused.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValidationError(f"cannot read quality suite {path}: {exc.strerror or exc}") from exc
    return parse_suite(text, filename=str(path), services=services)


def parse_suite(text: str, *, filename: str, services: Iterable[str] | None = None) -> QualitySuite:
    """Parse suite text; pure. Problems carry ``filename:line:column``."""
    try:
        document = parse_document(text, filename=filename)
    except SpecError as exc:
        raise ValidationError(_joined(p.render() for p in exc.problems)) from exc
    problems = [f"{filename}: {f.message}" for f in document.findings]
    try:
        suite = QualitySuite.model_validate(document.data)
    except PydanticValidationError as exc:
        problems += [_place(e, document.locations, filename) for e in exc.errors(include_url=False)]
        raise ValidationError(_joined(problems)) from exc
    known = list(services) if services is not None else None
    if suite.service is not None and known is not None and suite.service not in known:
        where = document.locations.nearest(("service",))
        line = f":{where.line}:{where.column}" if where else ""
        problems.append(
            f"{filename}{line}: service: unknown service '{suite.service}' "
            f"(services: {', '.join(sorted(known))})"
        )
    if problems:
        raise ValidationError(_joined(problems))
    return suite


def agent_checks(suite: QualitySuite) -> list[str]:
    """``CASE: KIND`` for each check that only an agent's answer can pass (it judges the
    sources or tool calls an agent reports, which a model's answer never has); pure."""
    return [
        f"{case.name}: {check.kind}"
        for case in suite.cases
        for check in case.checks
        if check.kind in AGENT_CHECK_KINDS
    ]


AGENT_CHECKS_HINT = (
    "keep retrieved: and called: checks in an agent's suite (agents.NAME.validation.quality)"
)


def agent_checks_of_model(service: str, suite: QualitySuite) -> str | None:
    """Why a model's suite with ``retrieved:`` or ``called:`` checks could never pass, or
    None; pure."""
    found = agent_checks(suite)
    if not found:
        return None
    return (
        f"the suite of service '{service}' checks what an agent reports "
        f"({', '.join(found[:3])}), which a model's answer never carries"
    )


def _place(error: Any, locations: Locations, filename: str) -> str:
    loc = tuple(part for part in error["loc"] if not str(part).startswith("function-"))
    where = locations.nearest(loc)
    line = f":{where.line}:{where.column}" if where else ""
    dotted = ".".join(str(part) for part in loc)
    message = str(error["msg"]).removeprefix("Value error, ")
    return f"{filename}{line}: {dotted}: {message}" if dotted else f"{filename}{line}: {message}"


def _joined(problems: Iterable[str]) -> str:
    lines = list(problems)
    return "malformed quality suite:\n  " + "\n  ".join(lines)
