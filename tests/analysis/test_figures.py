"""Every figure function writes a readable PNG, also from the thin data an early launch has."""

import matplotlib.image
import numpy as np
import pandas as pd

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
