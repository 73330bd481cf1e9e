"""Figures for the HTML reports: matplotlib figures written as inline SVG text.

Every plot llmfleet draws goes through here, so there is one way to make one:
matplotlib's object API (``Figure``, no pyplot and so no global figure state),
written as SVG with no date and stable ids, so the same numbers give the same
page, and text kept as text (``svg.fonttype: none``) so the page stays small and
searchable. A browser parses what matplotlib writes; nothing is drawn by hand.
matplotlib is imported only when a figure is made (commands that draw nothing
do not pay for it).
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matplotlib.figure import Figure

SIDE_COLORS = {"production": "#4c78a8", "candidate": "#f58518"}
"""one colour per side in every plot, so a reader learns them once"""


def new_figure(width_in: float, height_in: float) -> Figure:
    """An empty figure of that size in inches, with an SVG canvas attached."""
    from matplotlib.backends.backend_svg import FigureCanvasSVG
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width_in, height_in))
    FigureCanvasSVG(figure)
    return figure


def figure_svg(figure: Figure) -> str:
    """The figure as one ``<svg>`` element (no XML prolog), the same for the same figure."""
    from matplotlib import rc_context

    figure.tight_layout()
    out = io.StringIO()
    with rc_context({"svg.hashsalt": "llmfleet", "svg.fonttype": "none"}):
        figure.savefig(out, format="svg", metadata={"Date": None})
    text = out.getvalue()
    return text[text.index("<svg") :]
