"""The price per million tokens against concurrency, drawn with matplotlib as inline SVG.

The validation report shows where each side's tokens get cheaper as concurrency
rises (a replica costs the same per hour however busy it is). The figure is
made with matplotlib's object API (``Figure``, no pyplot and so no global
figure state) and written as SVG text, with no date and stable ids, so the
same numbers give the same page. matplotlib is imported only when a plot is made.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence

COLORS = {"production": "#4c78a8", "candidate": "#f58518"}


def cost_plot_svg(
    series: Mapping[str, Sequence[tuple[int, float]]], *, currency: str, title: str
) -> str:
    """An ``<svg>`` element: one line per side through its (concurrency, price) points."""
    from matplotlib import rc_context
    from matplotlib.backends.backend_svg import FigureCanvasSVG
    from matplotlib.figure import Figure

    figure = Figure(figsize=(5.2, 3.2))
    FigureCanvasSVG(figure)
    axes = figure.add_subplot()
    for side, points in series.items():
        ordered = sorted(points)
        if not ordered:
            continue
        xs, ys = [x for x, _ in ordered], [y for _, y in ordered]
        axes.plot(xs, ys, marker="o", label=side, color=COLORS.get(side))
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
    figure.tight_layout()
    out = io.StringIO()
    with rc_context({"svg.hashsalt": "llmfleet", "svg.fonttype": "none"}):
        figure.savefig(out, format="svg", metadata={"Date": None})
    text = out.getvalue()
    return text[text.index("<svg") :]
