"""Figures of a report: each function takes a DataFrame from `analysis.genotypes` / `analysis.tables` /
`analysis.runs` and writes one PNG.

Drawn on an Agg canvas through matplotlib's object API (as `trials.evaluation.cmc_plot` does): no pyplot, so
no global backend or figure registry is touched and nothing needs a display.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from analysis.genotypes import NUM_CELLS, OPERATIONS, slot_label
from analysis.uncertainty import MIN_TRIALS


def plot_operation_counts(counts: pd.DataFrame, path: Path) -> Path:
    """`genotypes.operation_counts` as a slots x operations heatmap, each cell annotated with its count."""
    trials = int(counts["trials"].iloc[0]) if len(counts) else 0
    return _slot_matrix(counts[list(OPERATIONS)].to_numpy(dtype=float), path,
                        f"Operation chosen per slot ({trials} search trials)", "{:.0f}", "trials")


def plot_alpha_heatmap(alpha: pd.DataFrame, path: Path, title: str = "Final softmax(α)") -> Path:
    """`genotypes.final_alpha` (12 x 4) as a heatmap, each cell annotated with its weight."""
    return _slot_matrix(alpha[list(OPERATIONS)].to_numpy(dtype=float), path, title, "{:.2f}", "softmax(α)",
                        vmax=1.0)


def plot_alpha_curves(history: pd.DataFrame, path: Path, title: str = "softmax(α) over epochs") -> Path:
    """`genotypes.alpha_frame` as small multiples: one panel per slot (rows: cells, columns: steps), one curve
    per operation."""
    figure = _figure(7.5, 1.6 * NUM_CELLS)
    axes = figure.subplots(NUM_CELLS, 2, sharex=True, sharey=True, squeeze=False)
    for (slot, per_slot), panel in zip(history.groupby("slot"), axes.ravel(), strict=False):
        for operation in OPERATIONS:
            curve = per_slot[per_slot["operation"] == operation].sort_values("epoch")
            panel.plot(curve["epoch"], curve["weight"], label=operation, marker="o" if len(curve) <= 15 else None,
                       markersize=2)
        panel.set_title(slot_label(int(slot)), fontsize=8)
        panel.grid(alpha=0.3)
    for panel in axes[-1]:
        panel.set_xlabel("epoch")
        panel.xaxis.set_major_locator(MaxNLocator(integer=True))
    for panel in axes[:, 0]:
        panel.set_ylabel("weight")
    axes[0, 0].set_ylim(0, 1)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    if handles:
        figure.legend(handles, labels, loc="lower center", ncol=len(OPERATIONS), fontsize=8)
    figure.suptitle(title)
    figure.tight_layout(rect=(0, 0.03, 1, 1))
    return _save(figure, path)


def plot_distribution(long: pd.DataFrame, by: str, value: str, path: Path, title: str) -> Path:
    """Every trial as a point per category of `by`, with a box where a category has at least 3 trials (a box of
    one or two values would draw quartiles that do not exist)."""
    return _save(distribution_figure(long, by, value, title), path)


def distribution_figure(long: pd.DataFrame, by: str, value: str, title: str) -> Figure:
    """The figure of `plot_distribution`; category names break at ` / ` and each category gets the width
    its longest line needs, so that neighbouring labels never overlap."""
    categories = list(dict.fromkeys(long[by]))
    groups = [long.loc[long[by] == category, value].to_numpy(dtype=float) for category in categories]
    labels = [f"{str(c).replace(' / ', chr(10))}\n(n={len(v)})" for c, v in zip(categories, groups, strict=True)]
    longest = max((len(line) for label in labels for line in label.splitlines()), default=1)
    per_category = max(1.4, 0.085 * longest + 0.35)
    figure = _figure(per_category * max(len(categories), 3) + 1.5, 3.8)
    axes = figure.add_subplot()
    boxed = [i for i, values in enumerate(groups) if len(values) >= MIN_TRIALS]
    if boxed:
        axes.boxplot([groups[i] for i in boxed], positions=boxed, widths=0.5, showfliers=False)
    for position, values in enumerate(groups):
        offsets = np.linspace(-0.15, 0.15, len(values)) if len(values) > 1 else np.zeros(1)
        axes.scatter(position + offsets, values, s=18, alpha=0.8, zorder=3)
    axes.set_xticks(range(len(categories)), labels)
    axes.set_xlim(-0.6, len(categories) - 0.4)
    axes.set_ylabel(value)
    axes.set_title(title)
    axes.grid(axis="y", alpha=0.3)
    figure.tight_layout()
    return figure


def plot_cost(table: pd.DataFrame, metric: str, path: Path) -> Path:
    """`tables.cost_table`: the metric against params (M), MACs (G) and, when measured, latency; the Pareto front
    of each drawn as a line."""
    return _save(cost_figure(table, metric), path)


def cost_figure(table: pd.DataFrame, metric: str) -> Figure:
    """The figure of `plot_cost`, for callers (and tests) that read it through matplotlib's object API."""
    panels = [("params", "pareto_params", "parameters (M)", 1e6), ("macs", "pareto_macs", "MACs (G)", 1e9)]
    if "latency_ms" in table and table["latency_ms"].notna().any():
        panels.append(("latency_ms", "pareto_latency", "latency (ms per image, batch 1)", 1.0))
    figure = _figure(4.5 * len(panels), 3.8)
    for panel, (cost, front, label, scale) in zip(figure.subplots(1, len(panels)), panels, strict=True):
        points = table.dropna(subset=[cost])
        xs = points[cost].to_numpy(dtype=float) / scale
        panel.scatter(xs, points[metric], s=20, alpha=0.6, label="trial")
        _front_panel(panel, xs, points[metric], points[front], label, metric, markersize=6)
        if points.empty:
            panel.text(0.5, 0.5, f"no trial logged {cost}", ha="center", va="center", transform=panel.transAxes)
    figure.suptitle(f"{metric} against cost")
    figure.tight_layout()
    return figure


def plot_latency_front(search: pd.DataFrame, retrained: pd.DataFrame, path: Path) -> Path:
    """`report_latency.latency_frames`: search trials (val/mAP against predicted latency, coloured by λ) and
    retrained networks (source/mAP against measured latency, else predicted), each front drawn as a line."""
    panels = [(search, "predicted_ms", "val/mAP", "search: predicted latency (ms per image)")]
    if not retrained.empty:
        cost = "measured_ms" if retrained["measured_ms"].notna().any() else "predicted_ms"
        panels.append((retrained, cost, "source/mAP", f"retrained: {cost.split('_')[0]} latency (ms per image)"))
    figure = _figure(4.8 * len(panels), 3.9)
    for panel, (frame, cost, metric, label) in zip(figure.subplots(1, len(panels), squeeze=False)[0], panels,
                                                   strict=True):
        points = frame.dropna(subset=[cost, metric])
        xs = points[cost].to_numpy(dtype=float)
        colour = points.get("latency_weight")
        drawn = panel.scatter(xs, points[metric], s=28, alpha=0.8, label="trial",
                              **({"c": colour, "cmap": "viridis"} if colour is not None else {}))
        if colour is not None and len(points):
            figure.colorbar(drawn, ax=panel, label="λ (latency_weight)")
        _front_panel(panel, xs, points[metric], points["on_front"], label, metric, markersize=5)
    figure.suptitle("accuracy against latency")
    figure.tight_layout()
    return _save(figure, path)


def _front_panel(panel, xs: np.ndarray, ys: pd.Series, on_front: pd.Series, xlabel: str, ylabel: str,
                 markersize: float) -> None:
    """The Pareto front over a panel's scattered trials, as a line in cost order, with labels and grid."""
    mask = on_front.astype(bool).to_numpy()
    order = np.argsort(xs[mask], kind="stable")
    panel.plot(xs[mask][order], ys.to_numpy(dtype=float)[mask][order], color="C3", marker="D",
               markersize=markersize, label="Pareto front")
    panel.set_xlabel(xlabel)
    panel.set_ylabel(ylabel)
    panel.grid(alpha=0.3)
    if len(xs):
        _readable_ticks(panel, xs)
        panel.legend(fontsize=8)


def _readable_ticks(panel, xs: np.ndarray, ticks: int = 5) -> None:
    """At most `ticks` x ticks with just enough decimals to tell them apart: near-equal costs (one genotype's
    parameter counts differ in the fifth digit) otherwise print as a row of overlapping long numbers."""
    low, high = float(np.min(xs)), float(np.max(xs))
    pad = (high - low) * 0.1 if high > low else max(abs(low) * 0.02, 1e-3)
    low, high = low - pad, high + pad
    values = MaxNLocator(nbins=ticks - 1, steps=[1, 2, 2.5, 5, 10]).tick_values(low, high)
    values = values[(values >= low) & (values <= high)]
    decimals = next(d for d in range(12) if np.allclose(np.round(values, d), values, rtol=0, atol=1e-9))
    panel.set_xlim(low, high)
    panel.set_xticks(values, [f"{value:.{decimals}f}" for value in values])


def plot_cmc_curves(cmc: pd.DataFrame, path: Path, title: str = "CMC of the top trials") -> Path:
    """`runs.load_cmc` (trial, rank, rate): one curve per trial, rank 1..n against the matching rate."""
    figure = _figure(6, 4)
    axes = figure.add_subplot()
    for trial, curve in cmc.groupby("trial", sort=False):
        curve = curve.sort_values("rank")
        axes.plot(curve["rank"], curve["rate"], marker="o" if len(curve) <= 20 else None, markersize=3, label=trial)
    axes.set_xlabel("rank")
    axes.set_ylabel("matching rate")
    axes.set_ylim(0, 1.02)
    axes.set_title(title)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    return _save(figure, path)


def _slot_matrix(values: np.ndarray, path: Path, title: str, value_format: str, colour_label: str,
                 vmax: float | None = None) -> Path:
    figure = _figure(5.5, 6)
    axes = figure.add_subplot()
    image = axes.imshow(values, cmap="viridis", aspect="auto", vmin=0,
                        vmax=vmax if vmax is not None else max(float(np.nanmax(values, initial=0)), 1.0))
    rows, columns = values.shape
    for row in range(rows):
        for column in range(columns):
            if not np.isnan(values[row, column]):
                colour = "white" if values[row, column] < 0.5 * image.norm.vmax else "black"
                axes.text(column, row, value_format.format(values[row, column]), ha="center", va="center",
                          fontsize=8, color=colour)
    axes.set_xticks(range(columns), list(OPERATIONS))
    axes.set_yticks(range(rows), [slot_label(slot) for slot in range(rows)])
    axes.set_title(title)
    figure.colorbar(image, ax=axes, label=colour_label)
    figure.tight_layout()
    return _save(figure, path)


def _figure(width: float, height: float) -> Figure:
    figure = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(figure)
    return figure


def _save(figure: Figure, path: Path) -> Path:
    path = Path(path)
    figure.savefig(path, format="png")
    return path
