"""Per-agent costs: each agent's calls, counted by the gateway per called service, priced
at that service's $/1M (measured, else live), beside the agent's own replicas' $/hour;
a call that cannot be priced says why and the fix, never a division by zero."""

from __future__ import annotations

from typing import Any

import pytest

from llmfleet.costs.agents import AGENT_TOKENS, agent_usage
from llmfleet.costs.money import money
from llmfleet.costs.report import FleetCost, LiveRate, cost_environment, fleet_json
from llmfleet.observe.exposition import Sample
from llmfleet.spec.model import ServiceSpec
from tests.costs.helpers import CPU, TODAY, book, measurement, service

CHAT = service()
EMBED = service(model="sim:embed")
AGENT = ServiceSpec.model_validate(
    {
        "model": {"source": "sim:agent-helper"},
        "engine": {"kind": "agent", "version": "1"},
        "agent": {"entrypoint": "pkg.mod:app", "models": ["chat", "embed"]},
        "resources": {"cpus": 2, "memory": "1Gi"},
    }
)
HOURLY = 0.031611 + 0.004237  # one replica: 1 vCPU, 1Gi (helpers.CPU)


def sample(agent: str, svc: str, kind: str, value: float, env: str = "production") -> Sample:
    labels = (("environment", env), ("agent", agent), ("kind", kind), ("service", svc))
    return Sample("llmfleet_gateway_agent_tokens", "counter", AGENT_TOKENS, labels, value)


def fleet_of(
    usage: dict[str, Any] | None,
    *,
    live: dict[str, LiveRate] | None = None,
    services: dict[str, ServiceSpec] | None = None,
    **costs: Any,
) -> FleetCost:
    """chat measured at 100 out / 50 in tok/s (revision 7); embed not measured."""
    return cost_environment(
        "production",
        services or {"chat": CHAT, "embed": EMBED, "helper": AGENT},
        book=book(**(costs or {"cpu": CPU})),
        serial=7,
        measurements=[measurement(1, spec=CHAT)],
        live=live,
        today=TODAY,
        agent_usage=usage,
    )


def test_the_gateway_counters_become_usage_per_agent_and_called_service() -> None:
    """Only the environment's agent series count; replicas of one gateway add up."""
    samples = [
        sample("helper", "chat", "prompt", 300),
        sample("helper", "chat", "completion", 40),
        sample("helper", "chat", "completion", 2),
        sample("helper", "embed", "prompt", 90),
        sample("helper", "chat", "prompt", 999, env="staging"),
        Sample("x", "counter", "llmfleet_gateway_prompt_tokens_total", (), 5),
    ]
    assert agent_usage(samples, environment="production") == {
        "helper": {"chat": {"prompt": 300, "completion": 42}, "embed": {"prompt": 90}}
    }


def test_an_agents_calls_are_priced_at_the_measured_rates_of_the_services_it_called() -> None:
    """chat's replica costs $0.035848/h; measured 100 out and 50 in tok/s, so $1M output
    is 0.035848 / 360,000 x 1e6 and input twice that. 2M prompt and 0.5M completion."""
    usage = {"helper": {"chat": {"prompt": 2e6, "completion": 5e5}}}
    fleet = fleet_of(usage)
    (helper,) = fleet.agents
    per_out = HOURLY / (100 * 3600) * 1e6
    per_in = HOURLY / (50 * 3600) * 1e6
    (call,) = helper.calls
    assert call.output_rate is not None and call.output_rate.basis == "measured"
    assert call.output_rate.per_million == pytest.approx(per_out)
    assert call.cost == pytest.approx(2 * per_in + 0.5 * per_out)
    assert helper.calls_cost == pytest.approx(call.cost)
    # its own replica priced as any service: 2 vCPU + 1 GiB
    assert helper.per_hour == pytest.approx(2 * 0.031611 + 0.004237)
    body = fleet_json(fleet)["agents"][0]
    assert body["agent"] == "helper" and body["unpriced_calls"] == []
    assert body["calls"][0]["per_million_input_tokens"] == {
        "value": pytest.approx(per_in),
        "basis": "measured",
    }


def test_an_unmeasured_service_is_priced_at_its_live_rate_or_named_with_the_fix() -> None:
    """embed was never benched (bench measures chat): with live counters its $/hour over
    its live input rate prices the prompt tokens; without them the call is unpriced and
    says what to run. Nothing divides by zero: an idle embed has no live price either."""
    usage = {"helper": {"embed": {"prompt": 1e6}, "chat": {"prompt": 1e6}}}
    live = {"embed": LiveRate(output_tokens_per_s=0.0, input_tokens_per_s=10.0, seconds=60)}
    (helper,) = fleet_of(usage, live=live).agents
    chat, embed = helper.calls
    assert embed.input_rate is not None and embed.input_rate.basis == "live"
    assert embed.cost == pytest.approx(HOURLY / (10 * 3600) * 1e6)
    assert helper.calls_cost == pytest.approx(embed.cost + (chat.cost or 0))

    for rates in (None, {"embed": LiveRate(0.0, 0.0, 60)}):
        (helper,) = fleet_of(usage, live=rates).agents
        _, embed = helper.calls
        assert embed.cost is None and helper.unpriced == ("embed",)
        assert "no $/1M input tokens for embed: run llmfleet bench embed" in embed.note
        assert helper.calls_cost == pytest.approx(helper.calls[0].cost or 0)


def test_a_called_service_without_a_price_or_gone_is_named() -> None:
    """chat on an A100 the spec has no price for: its calls are unpriced with the key to
    add; a service that left the environment since the gateway counted it: said so."""
    a100 = service(resources={"gpus": 1, "gpu_type": "nvidia-a100"})
    usage = {"helper": {"chat": {"completion": 10.0}, "old": {"prompt": 5.0}}}
    (helper,) = fleet_of(usage, services={"chat": a100, "helper": AGENT}).agents
    chat, old = helper.calls
    assert chat.cost is None
    assert chat.note.startswith("chat has no price for nvidia-a100; add costs.cloud.nvidia-a100")
    assert old.cost is None
    assert old.note == "old is not a service of production: its tokens have no price"
    assert helper.unpriced == ("chat", "old") and helper.calls_cost == 0


def test_without_counters_or_calls_the_agent_says_so() -> None:
    (quiet,) = fleet_of({}).agents
    assert quiet.calls == () and "no calls to the fleet's models" in quiet.note
    (unknown,) = fleet_of(None).agents
    assert "the local runtime is not running" in unknown.note
    assert fleet_of(None, services={"chat": CHAT}).agents == ()  # no agents, no lines


def test_the_tiny_cost_of_a_few_calls_is_written_out_not_in_exponent_form() -> None:
    assert money(6.46e-06, "USD") == "$0.00000646"
    assert money(0.0001234, "USD") == "$0.0001234" and money(0.03585, "USD") == "$0.03585"
