"""Training curves as PNG: one line per logged series over the optimizer step.

Drawn like the evaluation report's plots (``lib/evaluation/report.py``): a matplotlib
``Figure`` on the Agg canvas, never pyplot, so drawing is safe inside a Dagster run, and no
matplotlib version in the PNG, so the same points give the same bytes.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ark_assets.lib.artifacts import atomic_write_bytes

DPI: Final = 110
WIDTH: Final = 7.0  # inches: 770 px at DPI
PANEL_HEIGHT: Final = 1.6  # inches per series


def plot_curves(
    points: list[dict[str, Any]], series: Sequence[str], title: str, path: Path
) -> Path:
    """Write ``path``: each of ``series`` against ``step`` over ``points``, one line each, in
    its own panel (rewards and accuracies have different scales), the steps shared; a point
    that lacks a series is skipped for that line only."""
    figure = Figure(
        figsize=(WIDTH, 0.6 + PANEL_HEIGHT * len(series)), dpi=DPI, layout="constrained"
    )
    FigureCanvasAgg(figure)
    panels = figure.subplots(len(series), 1, sharex=True, squeeze=False)[:, 0]
    palette = colormaps["tab10"]
    for index, (axes, name) in enumerate(zip(panels, series, strict=True)):
        logged = [(point["step"], point[name]) for point in points if name in point]
        axes.plot(
            [step for step, _ in logged],
            [value for _, value in logged],
            ".-",
            color=palette(index % palette.N),
        )
        axes.set_ylabel(name, fontsize=8)
        axes.grid(alpha=0.3)
    panels[-1].set_xlabel("step")
    panels[-1].xaxis.set_major_locator(MaxNLocator(integer=True))
    figure.suptitle(title, fontsize=11)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    atomic_write_bytes(path, buffer.getvalue())
    return path
