"""The search trial on tiny synthetic data: alpha moves, the genotype is valid, outputs are written."""

import csv
import math

import numpy as np
import pytest
import torch

import spaces
from trials.config import make_config
from trials.data import PKSampler
from trials.data.order import halving_order
from trials.data.splits import load_splits
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


def test_valid_stream_runs_across_epochs_and_resumes_exactly(synthetic_root, tmp_path, stop_after):
    config = _config(synthetic_root, tmp_path / "whole", epochs=3, eval_interval=3, iters_per_epoch=3)
    run_search(config, LocalSession(tmp_path / "whole", verbose=False))
    whole = torch.load(tmp_path / "whole" / "checkpoint" / "state.pt", weights_only=False)
    # One valid batch per iteration, iteration 0 of each epoch included, drawn on from epoch to epoch.
    splits = load_splits(make_config("search", config))
    _, valid_side = spaces.tcm_split(halving_order(splits.train, splits.source.listed, "dataset", 0))
    per_pass = len(PKSampler([s[1] for s in valid_side], 4, 2, seed=1)) // 8
    stream = whole["valid_stream"]
    assert stream["pass"] * per_pass + stream["drawn"] == 3 * 3

    cut = {**config, "out": str(tmp_path / "cut")}
    with pytest.raises(stop_after.Interrupted):
        run_search(cut, stop_after(tmp_path / "cut", reports=1))
    run_search(cut, LocalSession(tmp_path / "cut", verbose=False))
    resumed = torch.load(tmp_path / "cut" / "checkpoint" / "state.pt", weights_only=False)
    assert resumed["valid_stream"] == stream
    np.testing.assert_array_equal(np.stack(resumed["alpha_history"]), np.stack(whole["alpha_history"]))
    for key, value in whole["model"].items():
        assert torch.equal(resumed["model"][key], value), key
