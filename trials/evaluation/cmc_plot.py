"""The CMC curves a trial logs as `cmc.png` (analysis/figures.py draws the report's, from the runs' metrics)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path


def plot_cmc(curves: Mapping[str, Iterable[float]], path: Path) -> Path:
    """CMC curves (rank 1..n against the fraction of queries matched) as a PNG, without a display.

    Drawn on an Agg canvas through the object API: no pyplot, so no global backend is chosen or changed.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(5, 3.5), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    for label, values in curves.items():
        values = [float(v) for v in values]
        axes.plot(range(1, len(values) + 1), values, marker="o" if len(values) <= 20 else None,
                  markersize=3, label=label)
    axes.set_xlabel("rank")
    axes.set_ylabel("matching rate")
    axes.set_ylim(0, 1.02)
    axes.set_title("CMC")
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, format="png")
    return path
