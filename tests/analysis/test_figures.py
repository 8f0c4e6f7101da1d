"""Every figure function writes a readable PNG, also from the thin data an early launch has."""

import matplotlib.image
import numpy as np
import pandas as pd
import pytest

from analysis import figures
from analysis.genotypes import alpha_frame, final_alpha, operation_counts

GENOTYPE = "exc-ag/exc-none/none-cross_att/exc-ag/exc-exc/none-cross_att"


def _readable(path):
    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100
    return image


def test_genotype_figures(tmp_path):
    runs = pd.DataFrame({"kind": ["search"] * 2, "status": ["FINISHED"] * 2, "genotype": [GENOTYPE, GENOTYPE]})
    history = alpha_frame(np.random.default_rng(0).dirichlet(np.ones(4), size=(20, 12)))
    _readable(figures.plot_operation_counts(operation_counts(runs), tmp_path / "counts.png"))
    _readable(figures.plot_alpha_heatmap(final_alpha(history), tmp_path / "alpha.png"))
    _readable(figures.plot_alpha_curves(history, tmp_path / "curves.png"))
    _readable(figures.plot_alpha_curves(alpha_frame(np.full((1, 12, 4), 0.25)), tmp_path / "one_epoch.png"))


def test_distribution_cost_and_cmc_figures(tmp_path):
    long = pd.DataFrame({"trial": list("abcd"), "group": ["tcm", "tcm", "random", "published"],
                         "source/mAP": [0.6, 0.62, 0.4, 0.58]})
    _readable(figures.plot_distribution(long, "group", "source/mAP", tmp_path / "groups.png", "per group"))
    cost = pd.DataFrame({"trial": ["a", "b"], "params": [2e6, 3e6], "macs": [np.nan, np.nan],
                         "source/mAP": [0.5, 0.6], "pareto_params": [True, True], "pareto_macs": [False, False]})
    _readable(figures.plot_cost(cost, "source/mAP", tmp_path / "cost.png"))  # no MACs logged: one empty panel
    cmc = pd.DataFrame({"trial": ["a"] * 3 + ["b"] * 3, "rank": [1, 2, 3] * 2, "rate": [0.5, 0.7, 0.8, 0.6, 0.7, 0.9]})
    _readable(figures.plot_cmc_curves(cmc, tmp_path / "cmc.png"))


def _tick_labels(axes):
    """The visible x tick labels of an axes after drawing: (text, window extent)."""
    renderer = axes.figure.canvas.get_renderer()
    return [(label.get_text(), label.get_window_extent(renderer)) for label in axes.get_xticklabels()
            if label.get_visible() and label.get_text()]


def _cost(params, macs):
    n = len(params)
    return pd.DataFrame({"trial": [f"t{i}" for i in range(n)], "params": params, "macs": macs,
                         "source/mAP": np.linspace(0.3, 0.6, n), "pareto_params": [True] * n,
                         "pareto_macs": [True] * n})


@pytest.mark.parametrize("params, macs", [
    ([2_337_500, 2_337_750, 2_338_000, 2_338_250, 2_337_800], [1.1500e9, 1.1501e9, 1.1502e9, 1.1503e9, 1.15e9]),
    ([2_328_035] * 3, [1.15e9] * 3),  # one genotype retrained three times
    ([1e5, 2.3e6, 9.9e6, 5e7], [2e8, 1.1e9, 4e9, 1.2e10]),
])
def test_cost_ticks_are_in_millions_and_billions_and_never_overlap(params, macs):
    figure = figures.cost_figure(_cost(params, macs), "source/mAP")
    figure.canvas.draw()
    params_axes, macs_axes = figure.axes[:2]
    assert params_axes.get_xlabel() == "parameters (M)" and macs_axes.get_xlabel() == "MACs (G)"
    for axes, values, scale in ((params_axes, params, 1e6), (macs_axes, macs, 1e9)):
        labels = _tick_labels(axes)
        assert 2 <= len(labels) <= 6
        texts = [text for text, _ in labels]
        assert len(set(texts)) == len(texts)  # distinct labels
        assert all(len(text) <= 8 for text in texts)  # `2.33750`, not `2337500` or `2.337500e+06`
        numbers = [float(text) for text in texts]
        assert min(numbers) <= min(values) / scale + 1e-9 or max(numbers) >= max(values) / scale - 1e-9
        low, high = axes.get_xlim()
        assert low <= min(values) / scale and max(values) / scale <= high  # every point is on the axes
        boxes = sorted((box for _, box in labels), key=lambda box: box.x0)
        for left, right in zip(boxes, boxes[1:], strict=False):
            assert left.x1 < right.x0, texts


def test_the_saved_cost_figure_is_the_readable_one(tmp_path):
    path = figures.plot_cost(_cost([2_337_500, 2_337_750], [1.15e9, 1.1501e9]), "source/mAP", tmp_path / "c.png")
    _readable(path)


def test_distribution_labels_never_overlap_even_with_long_category_names():
    categories = ["published / retrain", "searched / retrain", "published / cross_domain", "searched / cross_domain",
                  "a-rather-long-group-name-without-breaks"]
    long = pd.DataFrame({"trial": [f"t{i}" for i in range(10)], "category": categories * 2,
                         "source/mAP": np.linspace(0.2, 0.6, 10)})
    figure = figures.distribution_figure(long, "category", "source/mAP", "searched vs published")
    figure.canvas.draw()
    labels = _tick_labels(figure.axes[0])
    assert [text.splitlines()[-1] for text, _ in labels] == ["(n=2)"] * 5
    assert labels[2][0].splitlines()[:2] == ["published", "cross_domain"]
    boxes = [box for _, box in labels]
    for left, right in zip(boxes, boxes[1:], strict=False):
        assert left.x1 < right.x0


def test_only_a_category_of_at_least_three_trials_gets_a_box():
    """Quartiles of one or two values do not exist: such categories are points only."""
    long = pd.DataFrame({"trial": [f"t{i}" for i in range(6)], "group": ["tcm"] * 3 + ["random"] * 2 + ["final"],
                         "source/mAP": [0.5, 0.55, 0.6, 0.4, 0.45, 0.7]})
    axes = figures.distribution_figure(long, "group", "source/mAP", "boxes").axes[0]
    medians = [line for line in axes.lines if len(line.get_xdata()) == 2 and line.get_ydata()[0] == line.get_ydata()[1]
               and line.get_ydata()[0] == pytest.approx(0.55)]
    assert len(medians) == 1  # the box of tcm (n=3); random (n=2) and final (n=1) have none
    assert sum(len(collection.get_offsets()) for collection in axes.collections) == 6  # every trial drawn
    assert [label.get_text().splitlines()[-1] for label in axes.get_xticklabels()] == ["(n=3)", "(n=2)", "(n=1)"]
    assert all(line.get_xdata()[0] < 0.5 for line in axes.lines)  # every box line sits at position 0
