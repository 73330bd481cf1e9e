"""What each agent's calls to the fleet's models cost; pure.

An agent calls its models through the gateway with the key llmfleet made for it,
and the gateway counts the tokens of those calls per agent and called service
(``llmfleet_gateway_agent_tokens_total{agent,service,kind}``, since the gateway
started). Each call's tokens are priced at the called service's $/1M: the one
measured on its runtime (``llmfleet bench``), or else the effective one at its
live token rate (its $/hour over the tokens its engines served), which is all
there is for a service ``bench`` cannot measure, such as an embedding service.
Prompt tokens are priced at $/1M input, completion tokens at $/1M output. A call
that cannot be priced says why and what to run; never a division by zero.

The agent's own replicas are a service like any other (CPU priced as its
``resources:``); their $/hour is repeated here so one line says what an agent costs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from llmfleet.costs import formulas

if TYPE_CHECKING:
    from llmfleet.costs.report import ServiceCost

AGENT_TOKENS = "llmfleet_gateway_agent_tokens_total"
PROMPT, COMPLETION = "prompt", "completion"

Usage = Mapping[str, Mapping[str, Mapping[str, float]]]
"""agent -> called service -> ``prompt`` / ``completion`` -> tokens."""


class Sample(Protocol):
    """What a parsed metric sample gives (``observe.exposition.Sample``)."""

    @property
    def name(self) -> str: ...
    @property
    def labels(self) -> tuple[tuple[str, str], ...]: ...
    @property
    def value(self) -> float: ...


def agent_usage(
    samples: Iterable[Sample], *, environment: str
) -> dict[str, dict[str, dict[str, float]]]:
    """The agents' token counters of ``environment`` from the fleet endpoint's samples; pure."""
    usage: dict[str, dict[str, dict[str, float]]] = {}
    for s in samples:
        if s.name != AGENT_TOKENS:
            continue
        labels = dict(s.labels)
        if labels.get("environment") != environment or labels.get("kind") not in (
            PROMPT,
            COMPLETION,
        ):
            continue
        called = usage.setdefault(labels.get("agent", ""), {}).setdefault(
            labels.get("service", ""), {}
        )
        called[labels["kind"]] = called.get(labels["kind"], 0.0) + s.value
    return usage


@dataclass(frozen=True, slots=True)
class Rate:
    """A $/1M tokens of a called service and where it came from."""

    per_million: float
    basis: str
    """``measured`` (a bench of its runtime) or ``live`` (its $/hour over its live rate)"""


@dataclass(frozen=True, slots=True)
class AgentCall:
    """An agent's use of one service since the gateway started, and what it cost."""

    service: str
    prompt_tokens: float
    completion_tokens: float
    input_rate: Rate | None
    output_rate: Rate | None
    cost: float | None
    """None when some of the tokens have no price: ``note`` says why and the fix"""
    note: str

    def to_json(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "per_million_input_tokens": _rate_json(self.input_rate),
            "per_million_output_tokens": _rate_json(self.output_rate),
            "cost": self.cost,
            "note": self.note or None,
        }


@dataclass(frozen=True, slots=True)
class AgentCost:
    agent: str
    replicas: int
    per_hour: float | None
    """its own replicas, as its service line prices them"""
    calls: tuple[AgentCall, ...]
    note: str

    @property
    def calls_cost(self) -> float:
        """What the priced calls cost; ``unpriced`` names the others."""
        return sum(c.cost or 0.0 for c in self.calls)

    @property
    def unpriced(self) -> tuple[str, ...]:
        return tuple(c.service for c in self.calls if c.cost is None)

    def to_json(self) -> dict[str, Any]:
        """One agent in ``costs --json``; the field names are stable."""
        return {
            "agent": self.agent,
            "replicas": self.replicas,
            "per_hour": self.per_hour,
            "calls": [c.to_json() for c in self.calls],
            "calls_cost": self.calls_cost,
            "unpriced_calls": list(self.unpriced),
            "note": self.note or None,
        }


def cost_agents(
    agents: Iterable[str],
    *,
    environment: str,
    costed: Mapping[str, ServiceCost],
    usage: Usage | None,
) -> tuple[AgentCost, ...]:
    """Each agent's calls priced at the called services' $/1M; ``usage`` None means the
    gateway's counters could not be read (the runtime is not running)."""
    out = []
    for agent in sorted(agents):
        own = costed.get(agent)
        per_hour, replicas = (own.per_hour, own.replicas) if own else (None, 0)
        if usage is None:
            note = "no live counters (the local runtime is not running): token use unknown"
            out.append(AgentCost(agent, replicas, per_hour, (), note))
            continue
        used = usage.get(agent, {})
        calls = tuple(
            cost_call(service, used[service], environment=environment, costed=costed)
            for service in sorted(used)
        )
        note = "" if calls else "no calls to the fleet's models since the gateway started"
        out.append(AgentCost(agent, replicas, per_hour, calls, note))
    return tuple(out)


def cost_call(
    service: str,
    tokens: Mapping[str, float],
    *,
    environment: str,
    costed: Mapping[str, ServiceCost],
) -> AgentCall:
    """One agent's use of ``service`` priced; see the module doc."""
    prompt, completion = tokens.get(PROMPT, 0.0), tokens.get(COMPLETION, 0.0)
    called = costed.get(service)
    if called is None:
        note = f"{service} is not a service of {environment}: its tokens have no price"
        return AgentCall(service, prompt, completion, None, None, None, note)
    if called.missing is not None:
        note = f"{service} has no price for {called.missing.what}; {called.missing.hint}"
        return AgentCall(service, prompt, completion, None, None, None, note)
    input_rate = _rate(called.per_mtok_input, called, "input")
    output_rate = _rate(called.per_mtok_output, called, "output")
    needed = [
        (direction, rate)
        for direction, count, rate in (
            ("input", prompt, input_rate),
            ("output", completion, output_rate),
        )
        if count > 0
    ]
    missing = [direction for direction, rate in needed if rate is None]
    if missing:
        note = (
            f"no $/1M {' or '.join(missing)} tokens for {service}: run llmfleet bench {service} "
            "(it measures chat completions), or keep the fleet running so its engines' token "
            "counters give a live rate"
        )
        return AgentCall(service, prompt, completion, input_rate, output_rate, None, note)
    cost = sum(
        count / 1e6 * rate.per_million
        for count, rate in ((prompt, input_rate), (completion, output_rate))
        if count > 0 and rate is not None
    )
    return AgentCall(service, prompt, completion, input_rate, output_rate, cost, "")


def _rate(measured: float | None, called: ServiceCost, direction: str) -> Rate | None:
    """The measured $/1M, else the one at the service's live rate in that direction."""
    if measured is not None:
        return Rate(measured, "measured")
    if called.per_hour is None or called.live is None:
        return None
    live = (
        called.live.input_tokens_per_s if direction == "input" else called.live.output_tokens_per_s
    )
    value = formulas.per_million(called.per_hour, live)
    return None if value is None else Rate(value, "live")


def _rate_json(rate: Rate | None) -> dict[str, Any] | None:
    return None if rate is None else {"value": rate.per_million, "basis": rate.basis}
