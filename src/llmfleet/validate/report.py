"""Validation reports on disk: JSON for machines, a self-contained HTML page for people.

The HTML has no external links (this machine may be offline): plots are inline
SVG made by matplotlib (validate.plots). ``write_reports`` is the only side effect
(two files).
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from llmfleet.validate.assess import ServiceReport
from llmfleet.validate.gate import Outcome, outcome_of
from llmfleet.validate.intervals import Interval, Metric, interval_of
from llmfleet.validate.plots import latency_svg, throughput_svg
from llmfleet.validate.quality import CaseResult

STYLE = (
    "body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px;color:#222}"
    "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;"
    "text-align:left;vertical-align:top}.pass{color:#2a7d2a;font-weight:bold}"
    ".fail{color:#c0392b;font-weight:bold}.inconclusive{color:#a66300;font-weight:bold}"
    "pre{white-space:pre-wrap;margin:0;max-width:500px}figure{margin:1em 0}"
    "code{background:#f4f4f4;padding:0 3px}"
)
WORDS = {Outcome.PASS: "PASS", Outcome.FAIL: "FAIL", Outcome.INCONCLUSIVE: "INCONCLUSIVE"}


def write_reports(
    directory: Path, reports: Sequence[ServiceReport], meta: dict[str, Any]
) -> tuple[Path, Path]:
    """Write ``report.json`` and ``report.html`` under ``directory``; return their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    body = {
        **meta,
        "passed": all(r.passed for r in reports),
        "outcome": outcome_of([v for r in reports for v in r.verdicts]).value,
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
    names = [str(n) for n in meta.get("services") or [r.service for r in reports]]
    title = f"Validation of {html.escape(spoken_list(names))}"
    parts = [
        f"<!doctype html><meta charset=utf-8><title>llmfleet: {title}</title>"
        f"<style>{STYLE}</style><h1>{title}</h1>",
        f"<p>{html.escape(str(meta.get('started_at', '')))} &middot; "
        f"candidate revision {html.escape(str(meta.get('candidate_serial', '-')))} (staging) "
        f"against production revision {html.escape(str(meta.get('production_serial', '-')))}</p>",
    ]
    for report in reports:
        parts += _service_section(report)
    return "\n".join(parts)


def spoken_list(names: Sequence[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    if len(names) <= 1:
        return "".join(names) or "no services"
    return f"{', '.join(names[:-1])} and {names[-1]}"


def _service_section(report: ServiceReport) -> list[str]:
    outcome = report.outcome
    verdict = f"<span class={outcome.value}>{WORDS[outcome]}</span>"
    parts = [f"<h2>{html.escape(report.service)}: {verdict}</h2>"]
    if outcome is Outcome.INCONCLUSIVE:
        parts.append(
            "<p class=inconclusive>Inconclusive: the speed figures are too few or too noisy "
            "to tell a pass from a fail. Run longer (<code>validation.speed.duration_s</code>, "
            "<code>rounds</code>) and validate again.</p>"
        )
    parts += [_changes_table(report), _verdict_table(report)]
    parts += [f"<p class=fail>warning: {html.escape(w)}</p>" for w in report.warnings]
    if report.candidate_speed:
        parts += _speed_section(report)
    if report.costs is not None and report.candidate_speed:
        parts += _cost_section(report)
    if report.candidate_quality:
        parts += ["<h3>Quality</h3>", _quality_table(report)]
    return parts


def _changes_table(report: ServiceReport) -> str:
    if not report.changes:
        return "<p>The candidate's spec is the one production runs (nothing changed).</p>"
    rows = "".join(
        f"<tr><td><code>{html.escape(c.field)}</code></td><td>{html.escape(c.production)}</td>"
        f"<td>{html.escape(c.candidate)}</td></tr>"
        for c in report.changes
    )
    return (
        "<h3>What the candidate changes</h3><table><tr><th>field</th><th>production</th>"
        f"<th>candidate</th></tr>{rows}</table>"
    )


def _speed_section(report: ServiceReport) -> list[str]:
    sides = {"production": report.production_speed, "candidate": report.candidate_speed}
    sides = {name: speed for name, speed in sides.items() if speed}
    labels = list(report.candidate_speed)
    intervals = {
        name: {label: interval_of(Metric.THROUGHPUT, s.rounds) for label, s in speed.items()}
        for name, speed in sides.items()
    }
    parts = ["<h3>Latency distributions (production vs candidate)</h3>"]
    for label in labels:
        at_level = {name: speed[label] for name, speed in sides.items() if label in speed}
        parts.append(_figure(f"latency-{label}", latency_svg(label, at_level)))
    parts += [
        "<h3>Throughput per level</h3>",
        _figure("throughput", throughput_svg(labels, sides, intervals)),
        _throughput_table(labels, sides, intervals),
    ]
    return parts


def _figure(name: str, svg: str) -> str:
    return f'<figure class="plot" data-plot="{html.escape(name)}">{svg}</figure>'


def _throughput_table(
    labels: Sequence[str],
    sides: dict[str, dict[str, Any]],
    intervals: dict[str, dict[str, Interval]],
) -> str:
    head = "".join(f"<th>@{html.escape(label)}</th>" for label in labels)
    rows = "".join(
        f"<tr><td>{html.escape(name)}</td>"
        + "".join(
            f"<td>{intervals[name][label].show(' tok/s')} ({speed[label].answered} answers, "
            f"{len(speed[label].rounds)} rounds)</td>"
            if label in speed
            else "<td>-</td>"
            for label in labels
        )
        + "</tr>"
        for name, speed in sides.items()
    )
    return (
        f"<table><tr><th>side</th>{head}</tr>{rows}</table><p>Output tokens per second with "
        "its 95% bootstrap interval: rounds drawn again with replacement, and the answers "
        "within each round.</p>"
    )


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
        f"<tr><td>{html.escape(v.check)}</td><td class={v.outcome.value}>"
        f"{v.outcome.value if v.passed else WORDS[v.outcome]}</td>"
        f"<td>{html.escape(v.detail)}</td></tr>"
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
            f"<td><pre>{html.escape(result.answer)}</pre>{_did(result)}</td>"
            f"<td>{html.escape('; '.join(result.failures))}</td>"
            f"<td><pre>{html.escape(theirs.answer if theirs else '')}</pre>"
            f"{_did(theirs) if theirs else ''}</td></tr>"
        )
    head = (
        "<tr><th>case</th><th>verdict</th><th>candidate answer</th><th>failures</th>"
        "<th>production answer</th></tr>"
    )
    return f"<table>{head}{''.join(rows)}</table>"


def _did(result: CaseResult) -> str:
    """What an agent reported doing for a case (sources best first, tools in order)."""
    parts = []
    if result.sources:
        parts.append("retrieved: " + ", ".join(result.sources))
    if result.tool_calls:
        parts.append("called: " + ", ".join(result.tool_calls))
    return f"<p>{html.escape('; '.join(parts))}</p>" if parts else ""
