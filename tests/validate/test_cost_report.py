"""The validation report shows both sides' $/1M output tokens, in JSON and in the HTML page
with a plot against concurrency drawn by matplotlib."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llmfleet.validate.assess import ServiceReport, SideCosts
from llmfleet.validate.report import render_html, write_reports
from llmfleet.validate.stats import LoadSummary, RequestSample, summarize


def speed(*levels: tuple[int, float]) -> dict[str, LoadSummary]:
    out = {}
    for concurrency, tokens_per_s in levels:
        label = f"c{concurrency}"
        sample = RequestSample(
            ok=True, ttft=0.1, e2e=0.2, token_times=(0.1,), output_tokens=int(tokens_per_s)
        )
        out[label] = summarize(label, [sample] * 10, duration_s=10.0)
    return out


REPORT = ServiceReport(
    service="chat",
    candidate_hash="h",
    verdicts=(),
    candidate_speed=speed((1, 40), (4, 100)),
    production_speed=speed((1, 40), (4, 80)),
    costs=SideCosts(currency="USD", candidate=0.072, production=0.144),
)


def test_both_sides_price_per_million_tokens_per_level() -> None:
    """Candidate $0.072 an hour at 100 tokens/s: 0.072 / 360,000 x 1e6 = $0.20 per 1M;
    production $0.144 at 80 tokens/s: 0.144 / 288,000 x 1e6 = $0.50."""
    assert REPORT.cost_per_mtok("candidate")["c4"] == pytest.approx(0.2)
    assert REPORT.cost_per_mtok("production")["c4"] == pytest.approx(0.5)
    body = REPORT.to_json()["costs"]
    assert body["currency"] == "USD"
    assert body["per_million_output_tokens"]["production"]["c1"] == pytest.approx(1.0)


def test_the_html_page_has_the_cost_table_and_a_matplotlib_svg_plot(tmp_path: Path) -> None:
    page = render_html([REPORT], {"services": ["chat"]})
    section = page[page.index("Cost per million output tokens") :]
    assert "<td>$0.2</td>" in section and "<td>$0.5</td>" in section
    assert "<svg" in section and 'id="figure_1"' in section  # matplotlib's figure
    assert "price per 1M output tokens by concurrency" in section
    json_path, html_path = write_reports(tmp_path, [REPORT], {"services": ["chat"]})
    assert (
        json.loads(json_path.read_text())["services"][0]["costs"]["per_hour"]["candidate"] == 0.072
    )
    assert html_path.read_text() == page


def test_no_costs_no_section() -> None:
    plain = ServiceReport(
        service="chat", candidate_hash="h", verdicts=(), candidate_speed=REPORT.candidate_speed
    )
    assert "Cost per million" not in render_html([plain], {})
