"""``llmfleet alerts``, ``llmfleet top`` and ``llmfleet export prometheus-rules|grafana``."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from llmfleet.cli.output import console, errors
from llmfleet.cli.workspace import Workspace
from llmfleet.errors import FleetError
from llmfleet.observe.exposition import Sample
from llmfleet.observe.top import TopView, top_view

if TYPE_CHECKING:
    import httpx

SpecFile = Annotated[Path, typer.Option("--file", "-f", help="the fleet spec")]
Out = Annotated[Path | None, typer.Option("--output", "-o", help="write here, not to stdout")]
DEFAULT_SPEC = Path("fleet.yaml")
export_app = typer.Typer(
    help="Export alert rules and dashboards for Prometheus and Grafana.", no_args_is_help=True
)


def _agent_get(ws: Workspace, path: str) -> httpx.Response:
    """GET on the agent's socket; FleetError when the runtime is not running."""
    backend = ws.backend
    if not backend.running():
        raise FleetError("the local runtime is not running", hint="`llmfleet apply` starts it")
    import httpx

    transport = httpx.HTTPTransport(
        uds=str(backend.socket_path), verify=False
    )  # no TLS on a socket
    with httpx.Client(transport=transport, base_url="http://agent", timeout=10) as client:
        response = client.get(path)
    response.raise_for_status()
    return response


def _write(text: str, output: Path | None) -> None:
    if output is None:
        typer.echo(text, nl=not text.endswith("\n"))
    else:
        output.write_text(text)
        errors.print(f"wrote {output}")


@export_app.command("prometheus-rules")
def export_rules(spec_file: SpecFile = DEFAULT_SPEC, output: Out = None) -> None:
    """The spec's alerts as a Prometheus rule file (check it with `promtool check rules`)."""
    from llmfleet.observe.export import rules_yaml

    ws = Workspace(spec_file=spec_file, environment="production")
    try:
        text, warnings = rules_yaml(ws.loaded.resolved.environments.values())
    finally:
        ws.close()
    for warning in warnings:
        errors.print(Text("skipped ", style="yellow") + Text(warning))
    _write(text, output)


@export_app.command("grafana")
def export_grafana(
    output: Out = None,
    spec_file: Annotated[
        Path | None, typer.Option("--file", "-f", help="accepted like everywhere; not read")
    ] = None,
) -> None:
    """A Grafana dashboard over the series of the agent's /metrics endpoint."""
    from llmfleet.observe.grafana import grafana_dashboard

    _write(json.dumps(grafana_dashboard(), indent=2) + "\n", output)


def alerts(
    spec_file: SpecFile = DEFAULT_SPEC,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Alerts the local runtime evaluates: firing first, then pending."""
    ws = Workspace(spec_file=spec_file, environment="production")
    try:
        body = _agent_get(ws, "/v1/alerts").json()
    finally:
        ws.close()
    if as_json:
        from llmfleet.cli.json_views import dumps

        typer.echo(dumps(body), nl=False)
        return
    render_alerts(body)


def render_alerts(body: dict[str, Any]) -> None:
    if not body["alerts"]:
        console.print("[green]no alert is firing or pending[/]")
    table = Table("state", "alert", "severity", "environment/service", "since", "summary")
    for alert in body["alerts"]:
        labels = alert["labels"]
        where = f"{labels.get('environment', '')}/{labels.get('service', '')}"
        if "replica" in labels:
            where += f" {labels['replica']}"
        since = time.strftime("%H:%M:%S", time.localtime(alert["active_since"]))
        style = "red" if alert["state"] == "firing" else "yellow"
        table.add_row(
            Text(alert["state"], style=style),
            Text(labels["alertname"]),
            Text(labels.get("severity", "")),
            Text(where),
            since,
            Text(alert["annotations"].get("summary", "")),
        )
    if body["alerts"]:
        console.print(table)
    for alert in body.get("resolved", [])[:5]:
        ended = time.strftime("%H:%M:%S", time.localtime(alert["ends_at"]))
        summary = alert["annotations"].get("summary", "")
        console.print(
            Text(f"resolved {ended} {alert['labels']['alertname']}: {summary}", style="dim")
        )
    gpu = body.get("gpu", {})
    if not gpu.get("available"):
        console.print(Text(f"GPUs: {gpu.get('reason', 'unknown')}", style="dim"))
    elif gpu.get("warning"):
        console.print(Text(f"GPUs: {gpu['warning']}", style="yellow"))
    if body.get("metrics"):
        console.print(Text(f"Prometheus endpoint: {body['metrics']}", style="dim"))
    elif body.get("metrics_error"):
        console.print(Text(str(body["metrics_error"]), style="yellow"))


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.0f} ms"


def render_top(view: TopView, *, note: str = "", expand: bool = True) -> Group:
    """The frame of ``llmfleet top``; pure apart from building rich objects.

    ``expand`` fills the terminal's width; off a terminal the width is unbounded.
    """
    services = Table(
        "service",
        "ready",
        "req/s",
        "TTFT p50",
        "TTFT p95",
        "tok/s",
        "queue",
        "in flight",
        title="llmfleet top",
        title_justify="left",
        expand=expand,
    )
    for s in view.services:
        health = "green" if s.ready == s.replicas and s.replicas else "red"
        services.add_row(
            f"{s.environment}/{s.service}",
            Text(f"{s.ready}/{s.replicas}", style=health),
            f"{s.rps:.1f}",
            _ms(s.ttft_p50),
            _ms(s.ttft_p95),
            f"{s.tokens_per_s:.0f}",
            f"{s.queue:.0f}",
            f"{s.in_flight:.0f}",
        )
    replicas = Table("replica", "state", "restarts", "uptime", "running", "waiting", expand=expand)
    for r in view.replicas:
        style = "green" if r.state == "ready" else "yellow" if r.state == "starting" else "red"
        replicas.add_row(
            r.replica,
            Text(r.state, style=style),
            str(r.restarts),
            f"{r.uptime_s:.0f} s",
            f"{r.running:.0f}",
            f"{r.waiting:.0f}",
        )
    parts: list[Any] = [services, replicas]
    if view.gpus:
        gpus = Table("GPU", "name", "util", "temp", "memory", "health", expand=expand)
        for g in view.gpus:
            gpus.add_row(
                g.gpu,
                g.name,
                f"{g.utilization:.0%}",
                f"{g.temperature_c:.0f} C",
                f"{g.memory_used / 2**30:.1f}/{g.memory_total / 2**30:.1f} GiB",
                "ok" if g.healthy else Text("UNHEALTHY", style="red"),
            )
        parts.append(gpus)
    else:
        parts.append(Text("GPUs: none on this machine (NVML not available)", style="dim"))
    firing = f"{view.alerts_firing} alert(s) firing" if view.alerts_firing else "no alerts firing"
    parts.append(Text(f"{firing}   {note}   Ctrl-C to quit", style="dim"))
    return Group(*parts)


def _scrape(ws: Workspace) -> list[Sample]:
    from llmfleet.observe.exposition import parse_text

    text = _agent_get(ws, "/v1/metrics").text
    return [Sample(r.family, r.kind, r.name, r.labels, r.value) for r in parse_text(text)]


def top(
    spec_file: SpecFile = DEFAULT_SPEC,
    interval: Annotated[float, typer.Option(help="seconds between refreshes")] = 2.0,
) -> None:
    """A live view of services, replicas and GPUs; refreshes in place, Ctrl-C quits."""
    ws = Workspace(spec_file=spec_file, environment="production")
    try:
        _run_top(ws, interval)
    except KeyboardInterrupt:
        pass
    finally:
        ws.close()


def _run_top(ws: Workspace, interval: float) -> None:
    old, then = _scrape(ws), time.monotonic()
    empty = TopView((), (), (), False, 0)
    with Live(
        render_top(
            top_view(old, old, seconds=0) if old else empty,
            note="measuring",
            expand=console.is_terminal,
        ),
        console=console,
        refresh_per_second=4,
        screen=False,
    ) as live:
        while True:
            time.sleep(interval)
            new, now = _scrape(ws), time.monotonic()
            live.update(
                render_top(
                    top_view(old, new, seconds=now - then),
                    note=time.strftime("%H:%M:%S"),
                    expand=console.is_terminal,
                )
            )
            old, then = new, now


def register_observe(app: typer.Typer) -> None:
    """Add ``alerts``, ``top`` and ``export`` to the main app."""
    app.command("alerts")(alerts)
    app.command("top")(top)
    app.add_typer(export_app, name="export")
