"""Validation reports on disk: JSON for machines, a self-contained HTML page for people.

The HTML has no external links (this machine may be offline): plots are inline
SVG drawn here. ``write_reports`` is the only side effect (two files).
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from llmfleet.validate.assess import ServiceReport
from llmfleet.validate.stats import LoadSummary

COLORS = {"production": "#4c78a8", "candidate": "#f58518"}
STYLE = (
    "body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px;color:#222}"
    "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;"
    "text-align:left;vertical-align:top}.pass{color:#2a7d2a;font-weight:bold}"
    ".fail{color:#c0392b;font-weight:bold}pre{white-space:pre-wrap;margin:0;max-width:500px}"
)


def write_reports(
    directory: Path, reports: Sequence[ServiceReport], meta: dict[str, Any]
) -> tuple[Path, Path]:
    """Write ``report.json`` and ``report.html`` under ``directory``; return their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    body = {
        **meta,
        "passed": all(r.passed for r in reports),
        "services": [r.to_json() for r in reports],
    }
    json_path, html_path = directory / "report.json", directory / "report.html"
    json_path.write_text(json.dumps(body, indent=2, default=_number))
    html_path.write_text(render_html(reports, meta))
    return json_path, html_path


def _number(value: Any) -> Any:
    return None if isinstance(value, float) and math.isnan(value) else str(value)


def render_html(reports: Sequence[ServiceReport], meta: dict[str, Any]) -> str:
    """The whole page; pure."""
    parts = [
        f"<!doctype html><meta charset=utf-8><title>llmfleet validation</title>"
        f"<style>{STYLE}</style><h1>Validation of {html.escape(str(meta.get('services')))}</h1>",
        f"<p>{html.escape(str(meta.get('started_at', '')))} &middot; "
        f"candidate revision {meta.get('candidate_serial')} &middot; production revision "
        f"{meta.get('production_serial')}</p>",
    ]
    for report in reports:
        parts += _service_section(report)
    return "\n".join(parts)


def _service_section(report: ServiceReport) -> list[str]:
    verdict = "<span class=pass>PASS</span>" if report.passed else "<span class=fail>FAIL</span>"
    parts = [f"<h2>{html.escape(report.service)}: {verdict}</h2>", _verdict_table(report)]
    parts += [f"<p class=fail>warning: {html.escape(w)}</p>" for w in report.warnings]
    if report.candidate_speed:
        parts.append("<h3>Latency distributions (candidate vs production)</h3>")
        for label, cand in report.candidate_speed.items():
            prod = report.production_speed.get(label)
            parts.append(_latency_plot(label, cand, prod))
        parts.append("<h3>Throughput per load level</h3>")
        parts.append(_throughput_plot(report))
    if report.costs is not None and report.candidate_speed:
        parts += _cost_section(report)
    if report.candidate_quality:
        parts += ["<h3>Quality</h3>", _quality_table(report)]
    return parts


def _cost_section(report: ServiceReport) -> list[str]:
    """Both sides' price per million output tokens per level, in a table and a plot."""
    from llmfleet.costs.money import optional_money
    from llmfleet.costs.plot import cost_plot_svg

    assert report.costs is not None
    currency = report.costs.currency
    sides = {side: report.cost_per_mtok(side) for side in ("production", "candidate")}
    hourly = {"production": report.costs.production, "candidate": report.costs.candidate}
    rows = "".join(
        f"<tr><td>{html.escape(side)}</td><td>{optional_money(hourly[side], currency)}</td>"
        + "".join(
            f"<td>{optional_money(sides[side].get(label), currency)}</td>"
            for label in report.candidate_speed
        )
        + "</tr>"
        for side in sides
    )
    head = "".join(f"<th>@{html.escape(label)}</th>" for label in report.candidate_speed)
    points = {
        side: [(int(label[1:]), value) for label, value in by_level.items()
               if value is not None and label[1:].isdigit() and label.startswith("c")]
        for side, by_level in sides.items()
    }  # fmt: skip
    parts = [
        "<h3>Cost per million output tokens</h3>",
        f"<table><tr><th>side</th><th>per hour</th>{head}</tr>{rows}</table>",
        "<p>Each side's replicas at its environment's prices (costs:), over the output "
        "tokens per second it served at each level of this run.</p>",
    ]
    if any(points.values()):
        title = f"{report.service}: price per 1M output tokens by concurrency"
        parts.append(cost_plot_svg(points, currency=currency, title=title))
    return parts


def _verdict_table(report: ServiceReport) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(v.check)}</td><td class={'pass' if v.passed else 'fail'}>"
        f"{'pass' if v.passed else 'FAIL'}</td><td>{html.escape(v.detail)}</td></tr>"
        for v in report.verdicts
    )
    return f"<table><tr><th>check</th><th>verdict</th><th>observed vs limit</th></tr>{rows}</table>"


def _quality_table(report: ServiceReport) -> str:
    production = {r.name: r for r in report.production_quality}
    rows = []
    for result in report.candidate_quality:
        theirs = production.get(result.name)
        status = "pass" if result.passed else "fail"
        rows.append(
            f"<tr><td>{html.escape(result.name)}</td><td class={status}>{status.upper()}</td>"
            f"<td><pre>{html.escape(result.answer)}</pre></td>"
            f"<td>{html.escape('; '.join(result.failures))}</td>"
            f"<td><pre>{html.escape(theirs.answer if theirs else '')}</pre></td></tr>"
        )
    head = (
        "<tr><th>case</th><th>verdict</th><th>candidate answer</th><th>failures</th>"
        "<th>production answer</th></tr>"
    )
    return f"<table>{head}{''.join(rows)}</table>"


def _latency_plot(label: str, cand: LoadSummary, prod: LoadSummary | None) -> str:
    """Strip plots with p50/p95 marks of TTFT and end-to-end latency, side by side."""
    series = [("candidate", cand)] + ([("production", prod)] if prod else [])
    panels = []
    for metric in ("ttft", "e2e"):
        values = [list(getattr(s, f"samples_{metric}")) for _, s in series]
        top = max((v for vs in values for v in vs), default=1.0) * 1.1 or 1.0
        width, height = 360, 220
        items = [f"<text x=10 y=16 font-size=13>{metric.upper()} @{label} (s)</text>"]
        for index, ((name, summary), samples) in enumerate(zip(series, values, strict=True)):
            items += _strip(index, name, summary, samples, top=top, height=height, metric=metric)
        items.append(
            f"<text x=4 y={height - 24} font-size=10>0</text>"
            f"<text x=4 y=34 font-size=10>{top:.3g}</text>"
        )
        panels.append(
            f"<svg width={width} height={height} style='border:1px solid #eee'>"
            f"{''.join(items)}</svg>"
        )
    return "<div>" + " ".join(panels) + "</div>"


def _strip(
    index: int,
    name: str,
    summary: LoadSummary,
    samples: list[float],
    *,
    top: float,
    height: int,
    metric: str,
) -> list[str]:
    x0, plot_top, plot_bottom = 70 + index * 150, 30, height - 30

    def y(value: float) -> float:
        return plot_bottom - (plot_bottom - plot_top) * (value / top)

    color = COLORS[name]
    dots = [
        f"<circle cx={x0 + (i * 37) % 60} cy={y(v):.1f} r=2 fill={color} fill-opacity=0.5/>"
        for i, v in enumerate(samples[:2000])
    ]
    dist = getattr(summary, metric)
    marks = [
        f"<line x1={x0 - 5} x2={x0 + 65} y1={y(q):.1f} y2={y(q):.1f} stroke=#000 "
        f"stroke-dasharray='{dash}'/>"
        for q, dash in ((dist.p50, ""), (dist.p95, "4 2"))
        if not math.isnan(q)
    ]
    label = f"<text x={x0} y={height - 10} font-size=12 fill={color}>{name}</text>"
    return [*dots, *marks, label]


def _throughput_plot(report: ServiceReport) -> str:
    """Grouped bars: output tokens per second at each level, production then candidate."""
    labels = list(report.candidate_speed)
    sides = [("production", report.production_speed), ("candidate", report.candidate_speed)]
    top = max((s[k].output_tokens_per_s for _, s in sides for k in labels if k in s), default=1.0)
    top = top * 1.15 or 1.0
    width, height, group = 120 * len(labels) + 60, 220, 120
    items = []
    for i, label in enumerate(labels):
        for j, (name, speed) in enumerate(sides):
            if label not in speed:
                continue
            value = speed[label].output_tokens_per_s
            bar = (height - 40) * value / top
            x = 50 + i * group + j * 40
            items.append(
                f"<rect x={x} y={height - 25 - bar:.1f} width=36 height={bar:.1f} "
                f"fill={COLORS[name]}><title>{name}: {value:.1f} tok/s</title></rect>"
                f"<text x={x} y={height - 28 - bar:.1f} font-size=10>{value:.0f}</text>"
            )
        items.append(f"<text x={50 + i * group} y={height - 8} font-size=12>{label}</text>")
    legend = "".join(
        f"<text x={width - 90} y={16 + 14 * k} font-size=11 fill={COLORS[n]}>{n}</text>"
        for k, (n, _) in enumerate(sides)
    )
    return (
        f"<svg width={width} height={height} style='border:1px solid #eee'>"
        f"<text x=8 y=14 font-size=12>output tokens/s</text>{''.join(items)}{legend}</svg>"
    )
