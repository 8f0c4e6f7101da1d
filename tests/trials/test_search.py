"""The search trial on tiny synthetic data: alpha moves, the genotype is valid, outputs are written."""

import csv
import math

import numpy as np
import pytest

import spaces
from trials.runtime.session import LocalSession
from trials.search import run_search

pytestmark = pytest.mark.slow


def _config(root, out, **extra):
    return {"scale": "smoke", "dataset": "market1501", "data_dir": str(root), "out": str(out),
            "ids_per_batch": 4, "instances": 2, "epochs": 2, "eval_interval": 1, "seed": 0, **extra}


@pytest.mark.parametrize("supervision", ["tcm", "classification"])
def test_search_moves_alpha_and_derives_a_valid_genotype(synthetic_root, tmp_path, supervision):
    session = LocalSession(tmp_path, verbose=False)
    final = run_search(_config(synthetic_root, tmp_path, supervision=supervision), session)

    genotype = spaces.resolve_genotype(final["genotype"])
    assert len(genotype) == 12
    history = np.load(tmp_path / "checkpoint" / "alpha_history.npy")
    assert history.shape == (2, 12, 4)
    start = np.full((12, 4), 0.25)
    assert np.abs(history[-1] - start).max() > 1e-3, "alpha did not move"
    assert final["alpha/entropy"] < math.log(4)
    for m in session.history:
        assert {"loss/weight", "genotype", "alpha/entropy", "val/mAP", "val/rank1"} <= set(m)
    assert "loss/architecture" in session.history[-1]
    with open(tmp_path / "checkpoint" / "alpha_history.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 * 12 * 4 and set(rows[0]) == {"epoch", "slot", "cell", "step", "operation", "weight"}
    assert spaces.resolve_genotype(str(tmp_path / "checkpoint" / "genotype.json")) == genotype
