"""The HTML validation report as a real browser shows it: headless Chromium parses the
page, and every plot must have both sides' data drawn, in the DOM and in the pixels."""

from __future__ import annotations

import colorsys
import random
from pathlib import Path

from PIL import Image

from llmfleet.validate.assess import ServiceReport, SideCosts
from llmfleet.validate.changes import SpecChange
from llmfleet.validate.gate import Verdict
from llmfleet.validate.report import write_reports
from llmfleet.validate.stats import RequestSample, merge_summaries
from tests.validate.browser import SHAPES, Element, render_page


def level(label: str, *, ttft: float, rounds: int = 3, seed: int = 1):  # type: ignore[no-untyped-def]
    rng = random.Random(seed)
    parts = []
    for _ in range(rounds):
        samples = [
            RequestSample(ok=True, ttft=ttft * rng.uniform(0.7, 1.6), e2e=0.5 + rng.random(),
                          token_times=(0.1, 0.15, 0.2), output_tokens=16)
            for _ in range(30)
        ]  # fmt: skip
        parts.append((samples, 2.0))
    return merge_summaries(label, parts)


def report() -> ServiceReport:
    return ServiceReport(
        service="chat",
        candidate_hash="h",
        verdicts=(Verdict("p95 TTFT / production @c1", True, 0.9, 1.1, "0.9x <= 1.1x"),),
        candidate_speed={"c1": level("c1", ttft=0.1), "c4": level("c4", ttft=0.2, seed=2)},
        production_speed={"c1": level("c1", ttft=0.12, seed=3), "c4": level("c4", ttft=0.3)},
        costs=SideCosts(currency="USD", candidate=0.072, production=0.144),
        changes=(SpecChange("engine.version", "1.1.0", "1.2.0"),),
    )


def hue_pixels(image: Image.Image, box: tuple[int, int, int, int]) -> dict[str, int]:
    """Pixels of production's blue and of candidate's orange (any lightness) in ``box``."""
    counts = {"production": 0, "candidate": 0}
    left, top, width, height = box
    crop = image.convert("RGB").crop((left, top, left + width, top + height))
    for (red, green, blue), count in _colors(crop):
        hue, saturation, _value = colorsys.rgb_to_hsv(red / 255, green / 255, blue / 255)
        if saturation < 0.25:
            continue
        if 0.55 <= hue <= 0.63:  # 4c78a8 is 211 degrees
            counts["production"] += count
        elif 0.05 <= hue <= 0.12:  # f58518 is 30 degrees
            counts["candidate"] += count
    return counts


def _colors(image: Image.Image) -> list[tuple[tuple[int, int, int], int]]:
    found = image.getcolors(maxcolors=1 << 24) or []
    return [(color, count) for count, color in found]  # type: ignore[misc]


def top_level_svgs(root: Element) -> list[Element]:
    return [
        e for e in root.descendants()
        if e.tag == "svg" and not any(a.tag == "svg" for a in e.ancestors())
    ]  # fmt: skip


def test_every_plot_draws_both_sides_in_a_real_browser(tmp_path: Path) -> None:
    """Parsed by Chromium, no shape swallows the shapes after it (an unquoted attribute
    before ``/>`` did that), and each plot shows blue and orange pixels of both sides."""
    _json, page = write_reports(tmp_path / "report", [report()], {"services": ["chat"]})
    rendered = render_page(page, tmp_path)
    svgs = top_level_svgs(rendered.dom)
    assert len(svgs) >= 4, f"expected latency, throughput and cost plots, found {len(svgs)}"
    image = Image.open(rendered.screenshot)
    for svg in svgs:
        nested = [
            e.tag for e in svg.descendants()
            if e.tag in SHAPES and any(d.tag in SHAPES - {"text"} for d in e.descendants())
        ]  # fmt: skip
        assert not nested, f"shapes nested in shapes (the browser misparsed the SVG): {nested[:5]}"
        left, top, width, height = (int(v) for v in svg.attrs["data-box"].split(","))
        assert width > 100 and height > 100, svg.attrs["data-box"]
        counts = hue_pixels(image, (left, top, width, height))
        assert counts["production"] > 60 and counts["candidate"] > 60, (
            f"plot at {svg.attrs['data-box']} is missing a side's data: {counts}; "
            f"see {rendered.screenshot}"
        )
    series = {
        e.attrs["id"]: e
        for e in rendered.dom.descendants()
        if e.attrs.get("id", "").startswith("series-")
    }
    for label in ("c1", "c4"):
        for metric in ("ttft", "e2e"):
            for side in ("production", "candidate"):
                dots = [
                    d
                    for d in series[f"series-{label}-{metric}-{side}"].descendants()
                    if d.tag == "use"
                ]
                assert len(dots) == 90, f"{label} {metric} {side}: {len(dots)} of 90 answers drawn"
        for side in ("production", "candidate"):
            bar = series[f"series-throughput-{label}-{side}"]
            assert any(d.tag == "path" for d in bar.descendants()), f"no {side} bar at {label}"


def test_the_title_names_the_services_and_the_page_shows_what_changed(tmp_path: Path) -> None:
    _json, page = write_reports(tmp_path, [report()], {"services": ["chat", "code"]})
    text = page.read_text()
    assert "<h1>Validation of chat and code</h1>" in text and "['chat'" not in text
    assert "What the candidate changes" in text
    assert "<td><code>engine.version</code></td><td>1.1.0</td><td>1.2.0</td>" in text
