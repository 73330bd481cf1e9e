"""The price per million tokens against concurrency, drawn with matplotlib as inline SVG.

The validation report shows where each side's tokens get cheaper as concurrency
rises (a replica costs the same per hour however busy it is). The figure is
made and written as SVG by ``llmfleet.plots``, like every plot of the reports.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from llmfleet.plots import SIDE_COLORS, figure_svg, new_figure


def cost_plot_svg(
    series: Mapping[str, Sequence[tuple[int, float]]], *, currency: str, title: str
) -> str:
    """An ``<svg>`` element: one line per side through its (concurrency, price) points."""
    figure = new_figure(5.2, 3.2)
    axes = figure.add_subplot()
    for side, points in series.items():
        ordered = sorted(points)
        if not ordered:
            continue
        xs, ys = [x for x, _ in ordered], [y for _, y in ordered]
        axes.plot(xs, ys, marker="o", label=side, color=SIDE_COLORS.get(side))
    axes.set_xscale("log", base=2)
    levels = sorted({x for points in series.values() for x, _ in points})
    axes.set_xticks(levels, [str(x) for x in levels])
    axes.minorticks_off()
    axes.set_xlabel("concurrency (requests in flight)")
    axes.set_ylabel(f"{currency} per 1M output tokens")
    axes.set_title(title, fontsize=10)
    axes.grid(True, alpha=0.3)
    if series:
        axes.legend()
    return figure_svg(figure)
