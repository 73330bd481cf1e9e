"""``llmfleet costs``, and the bill lines of ``llmfleet plan``; thin over ``llmfleet.costs``."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from llmfleet.cli.output import console
from llmfleet.cli.workspace import Workspace

if TYPE_CHECKING:
    from llmfleet.costs.agents import Rate as AgentRate
    from llmfleet.costs.agents import Usage
    from llmfleet.costs.catalogue import Catalogue
    from llmfleet.costs.report import FleetCost, LiveRate, ServiceCost
    from llmfleet.observe.exposition import Sample
    from llmfleet.plan.diff import ActualEnvironment
    from llmfleet.plan.model import Plan

SpecFile = Annotated[Path, typer.Option("--file", "-f", help="the fleet spec")]
DEFAULT_SPEC = Path("fleet.yaml")


def today() -> datetime:
    return datetime.now(UTC)


def costs(
    spec_file: SpecFile = DEFAULT_SPEC,
    env: Annotated[str, typer.Option("--env", "-e", help="environment to price")] = "production",
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
    catalogue: Annotated[
        bool, typer.Option("--catalogue", help="list llmfleet's catalogue of public prices")
    ] = False,
) -> None:
    """What an environment costs: $/hour, $/month and $/1M tokens at measured throughput."""
    from llmfleet.costs.catalogue import load_catalogue
    from llmfleet.costs.gather import gather_costs
    from llmfleet.costs.report import fleet_json

    if catalogue:
        render_catalogue(console, load_catalogue(), as_json=as_json)
        return
    ws = Workspace(spec_file=spec_file, environment=env)
    try:
        desired = ws.desired
        samples = _fleet_samples(ws)
        live, usage = _live_figures(samples, env)
        fleet, running = gather_costs(
            ws.store, desired, live=live, today=today().date(), agent_usage=usage
        )
    finally:
        ws.close()
    if as_json:
        sys.stdout.write(json.dumps(fleet_json(fleet), indent=2) + "\n")
        return
    render_costs(console, fleet, note=running.note)


def _fleet_samples(ws: Workspace) -> list[Sample] | None:
    """The fleet endpoint's samples (engines and gateways); None without a runtime."""
    backend = ws.backend
    if not backend.running():
        return None
    import httpx

    from llmfleet.errors import FleetError
    from llmfleet.observe.exposition import Sample, parse_text

    transport = httpx.HTTPTransport(uds=str(backend.socket_path))
    try:
        with httpx.Client(transport=transport, base_url="http://agent", timeout=10) as client:
            text = client.get("/v1/metrics").raise_for_status().text
    except (httpx.HTTPError, OSError, FleetError):
        return None
    return [Sample(r.family, r.kind, r.name, r.labels, r.value) for r in parse_text(text)]


def _live_figures(
    samples: list[Sample] | None, env: str
) -> tuple[dict[str, LiveRate] | None, Usage | None]:
    """The engines' token rates since their replicas started, and the agents' token use
    the gateway counted; both None without a runtime."""
    if samples is None:
        return None, None
    from llmfleet.costs.agents import agent_usage
    from llmfleet.observe.costs import live_rates

    rates = {service: rate for (e, service), rate in live_rates(samples).items() if e == env}
    return rates, agent_usage(samples, environment=env)


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def render_costs(out: Console, fleet: FleetCost, *, note: str = "") -> None:
    """The per-service table, then where each figure came from, then the warnings."""
    from llmfleet.costs.money import money, optional_money

    cur = fleet.currency
    table = Table(title=f"Costs of {fleet.environment} ({cur})", title_justify="left")
    for column in ("service", "replicas", "/hour", "/month", "/1M out", "/1M in", "idle",
                   "/1M out live"):  # fmt: skip
        table.add_column(column, justify="left" if column == "service" else "right")
    for s in fleet.services:
        table.add_row(
            s.service,
            str(s.replicas),
            optional_money(s.per_hour, cur, missing="no price"),
            optional_money(s.per_month, cur, missing="no price"),
            optional_money(s.per_mtok_output, cur, missing="not measured"),
            optional_money(s.per_mtok_input, cur),
            _percent(s.idle_share),
            optional_money(s.effective_per_mtok_output, cur),
        )
    table.add_row("total", "", money(fleet.per_hour, cur), money(fleet.per_month, cur), *[""] * 4)
    out.print(table)
    _render_comparison(out, fleet)
    _render_agents(out, fleet)
    for s in fleet.services:
        out.print(_provenance(s, cur))
    if note:
        out.print(Text(note, style="dim"))
    for warning in fleet.warnings:
        out.print(Text("warning: ", style="yellow") + Text(warning))


def _render_agents(out: Console, fleet: FleetCost) -> None:
    """Each agent: its own replicas, then its calls to each model priced at that
    model's $/1M (since the gateway started)."""
    if not fleet.agents:
        return
    from llmfleet.costs.money import money, optional_money

    cur = fleet.currency
    table = Table(title="Agents: their calls to the models, since the gateway started",
                  title_justify="left")  # fmt: skip
    for column in ("agent", "called", "prompt tok", "completion tok", "/1M in", "/1M out",
                   "cost"):  # fmt: skip
        table.add_column(column, justify="left" if column in ("agent", "called") else "right")
    for a in fleet.agents:
        own = optional_money(a.per_hour, cur, missing="no price")
        table.add_row(a.agent, f"own replicas ({a.replicas})", "", "", "", "", f"{own}/hour")
        for c in a.calls:
            table.add_row(
                "", c.service, f"{c.prompt_tokens:,.0f}", f"{c.completion_tokens:,.0f}",
                _rate_text(c.input_rate, cur), _rate_text(c.output_rate, cur),
                optional_money(c.cost, cur, missing="unpriced"),
            )  # fmt: skip
        if a.calls:
            table.add_row("", "calls", "", "", "", "", money(a.calls_cost, cur))
    out.print(table)
    for a in fleet.agents:
        notes = [a.note] if a.note else []
        notes += [c.note for c in a.calls if c.note]
        if notes:
            out.print(Text("  ") + Text(a.agent, style="bold") + Text(": " + "; ".join(notes)))


def _rate_text(rate: AgentRate | None, currency: str) -> str:
    from llmfleet.costs.money import money

    if rate is None:
        return "-"
    return money(rate.per_million, currency) + (" live" if rate.basis == "live" else "")


def _render_comparison(out: Console, fleet: FleetCost) -> None:
    """Cloud against own, for the services with GPUs."""
    from llmfleet.costs.money import optional_money

    rows = [s for s in fleet.services if s.comparison is not None]
    if not rows:
        return
    cur = fleet.currency
    table = Table(title="Own cluster against cloud", title_justify="left")
    for column in ("service", "basis", "/month", "/1M out", "break-even used", "payback"):
        table.add_column(column, justify="left" if column in ("service", "basis") else "right")
    for s in rows:
        c = s.comparison
        assert c is not None
        runs = "own" if c.basis == "cloud" else "cloud"
        table.add_row(s.service, runs, optional_money(s.per_month, cur, missing="no price"),
                      optional_money(s.per_mtok_output, cur), "", "")  # fmt: skip
        payback = "never" if c.payback_months is None else f"{c.payback_months:.1f} months"
        table.add_row(
            "",
            c.basis,
            optional_money(c.per_month, cur, missing="no price"),
            optional_money(c.per_mtok_output, cur),
            _percent(c.break_even_utilisation),
            payback if c.break_even_utilisation is not None else "-",
        )
    out.print(table)


def _provenance(s: ServiceCost, currency: str) -> Text:
    """One line per service: which price, which measurement, what the live counters say."""
    from llmfleet.costs.money import price_phrase

    parts = []
    if s.price is not None:
        parts.append(f"price: {price_phrase(s.price, currency)} ({s.price.ref.place})")
    if s.pick is not None:
        m = s.pick.measurement
        revision = f"revision {m.serial}" + ("" if s.pick.exact_revision else ", same runtime")
        parts.append(
            f"measured: #{m.id} {m.source} {m.created_at:%Y-%m-%d %H:%M} UTC at concurrency "
            f"{m.concurrency} ({revision}; {m.output_tokens_per_s:.1f} out, "
            f"{m.input_tokens_per_s:.1f} in tok/s, {m.replicas} replica(s))"
        )
    if s.measured_note:
        parts.append(s.measured_note)
    if s.live is not None:
        parts.append(
            f"live: {s.live.output_tokens_per_s:.2f} out tok/s over {s.live.seconds:.0f} s"
        )
    if s.live_note:
        parts.append(s.live_note)
    return Text("  ") + Text(s.service, style="bold") + Text(": " + "; ".join(parts))


def render_catalogue(out: Console, catalogue: Catalogue, *, as_json: bool) -> None:
    from llmfleet.costs.formulas import gpu_share
    from llmfleet.costs.money import money

    if as_json:
        body = {
            "currency": catalogue.currency,
            "cloud": [o.model_dump(mode="json") for o in catalogue.cloud],
            "cpu": [c.model_dump(mode="json") for c in catalogue.cpu],
        }
        sys.stdout.write(json.dumps(body, indent=2) + "\n")
        return
    table = Table(title="Catalogue of public prices", title_justify="left")
    for column in ("id", "hardware", "provider", "sku", "per hour", "per unit", "as of"):
        table.add_column(column)
    cur = catalogue.currency
    for o in catalogue.cloud:
        per_gpu = money(gpu_share(o.price_per_hour, o.gpus_per_instance), cur)
        table.add_row(o.id, o.hardware, o.provider, o.sku, money(o.price_per_hour, cur),
                      f"{per_gpu}/GPU", str(o.as_of or "-"))  # fmt: skip
    for c in catalogue.cpu:
        unit = f"{money(c.price_per_vcpu_hour, cur)}/vCPU + {money(c.price_per_gib_hour, cur)}/GiB"
        table.add_row(c.id, "cpu", c.provider, c.sku or "-", "-", unit, str(c.as_of or "-"))
    out.print(table)


def render_plan_costs(out: Console, ws: Workspace, plan: Plan, actual: ActualEnvironment) -> None:
    """Under a plan: what it does to the monthly bill, and prices that are getting old."""
    from llmfleet.costs.delta import bill_delta
    from llmfleet.costs.gather import price_book
    from llmfleet.costs.prices import ReplicaPrice, price_replica, stale_prices
    from llmfleet.spec.resources import Resources

    desired = ws.desired
    book = price_book(desired)
    running = {
        r.replica_id: (r.service, Resources.model_validate(r.config.get("resources") or {}))
        for r in actual.replicas
    }
    delta = bill_delta(plan, desired=desired, running=running, book=book)
    for line in delta.lines:
        out.print(Text("  bill: ", style="cyan") + Text(line))
    if delta.lines or delta.before or delta.after:
        out.print(Text(f"  {delta.summary()}", style="cyan"))
    refs = [
        found.ref
        for s in desired.services.values()
        if isinstance(found := price_replica(s.resources, book), ReplicaPrice)
    ]
    for warning in stale_prices(
        refs, today=today().date(), max_age_days=book.spec.stale_after_days
    ):
        out.print(Text("  warning: ", style="yellow") + Text(warning))
