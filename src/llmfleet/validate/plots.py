"""The validation report's speed plots: latency per level and throughput with intervals.

Drawn with matplotlib through ``llmfleet.plots`` (like the cost plot), never by
hand. Each side's data is its own artist with an id (``gid``) that names the plot,
the metric and the side, so a test can find every series in the page a browser
parsed. Pure: numbers in, SVG text out.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Literal

from llmfleet.plots import SIDE_COLORS, figure_svg, new_figure
from llmfleet.validate.intervals import Interval
from llmfleet.validate.stats import LoadSummary

GOLDEN = 0.618033988749895  # spreads a strip's dots evenly, the same way every time


def _jitter(count: int) -> list[float]:
    return [((i * GOLDEN) % 1.0 - 0.5) * 0.5 for i in range(count)]


def latency_svg(label: str, sides: Mapping[str, LoadSummary]) -> str:
    """TTFT and end-to-end latency at one level: each side's answers as a strip of dots,
    with its p50 (solid) and p95 (dashed) marked."""
    figure = new_figure(7.4, 2.9)
    for column, (metric, title) in enumerate(
        (("ttft", "time to first token"), ("e2e", "end to end"))
    ):
        axes = figure.add_subplot(1, 2, column + 1)
        names = list(sides)
        for position, name in enumerate(names):
            summary = sides[name]
            samples = list(getattr(summary, f"samples_{metric}"))[:2000]
            xs = [position + offset for offset in _jitter(len(samples))]
            dots = axes.scatter(xs, samples, s=9, alpha=0.55, color=SIDE_COLORS.get(name),
                                linewidths=0)  # fmt: skip
            dots.set_gid(f"series-{label}-{metric}-{name}")
            dist = getattr(summary, metric)
            marks: tuple[tuple[float, Literal["-", "--"]], ...] = (
                (dist.p50, "-"),
                (dist.p95, "--"),
            )
            for value, style in marks:
                if not math.isnan(value):
                    axes.hlines(value, position - 0.35, position + 0.35, colors="#222",
                                linestyles=style, linewidth=1.2)  # fmt: skip
        axes.set_xticks(range(len(names)), names)
        axes.set_xlim(-0.6, len(names) - 0.4)
        axes.set_ylim(bottom=0)
        axes.set_ylabel("seconds")
        axes.set_title(f"{title} @{label} (p50 solid, p95 dashed)", fontsize=9)
        axes.grid(True, axis="y", alpha=0.3)
    return figure_svg(figure)


def throughput_svg(
    labels: Sequence[str],
    sides: Mapping[str, Mapping[str, LoadSummary]],
    intervals: Mapping[str, Mapping[str, Interval]],
) -> str:
    """Output tokens per second per level, one bar per side, each with its bootstrap
    interval as an error bar (the bar's height alone says nothing of the noise)."""
    figure = new_figure(max(4.0, 1.3 * len(labels) + 2.0), 3.0)
    axes = figure.add_subplot()
    names = list(sides)
    width = 0.8 / max(len(names), 1)
    for index, name in enumerate(names):
        shown = [label for label in labels if label in sides[name]]
        xs = [labels.index(label) + (index - (len(names) - 1) / 2) * width for label in shown]
        heights = [sides[name][label].output_tokens_per_s for label in shown]
        errors = _error_bars(heights, [intervals[name].get(label) for label in shown])
        bars = axes.bar(xs, heights, width * 0.95, yerr=errors, capsize=4, label=name,
                        color=SIDE_COLORS.get(name), error_kw={"ecolor": "#222"})  # fmt: skip
        for patch, label in zip(bars.patches, shown, strict=True):
            patch.set_gid(f"series-throughput-{label}-{name}")
        axes.bar_label(bars, fmt="%.0f", padding=2, fontsize=8)
    axes.set_xticks(range(len(labels)), list(labels))
    axes.set_ylabel("output tokens/s")
    axes.set_title("throughput per level (bars: 95% bootstrap interval)", fontsize=9)
    axes.grid(True, axis="y", alpha=0.3)
    axes.legend(fontsize=8)
    return figure_svg(figure)


def _error_bars(heights: list[float], found: list[Interval | None]) -> list[list[float]]:
    below, above = [], []
    for height, interval in zip(heights, found, strict=True):
        known = interval is not None and not math.isnan(interval.low)
        below.append(max(height - interval.low, 0.0) if known and interval else 0.0)
        above.append(max(interval.high - height, 0.0) if known and interval else 0.0)
    return [below, above]
