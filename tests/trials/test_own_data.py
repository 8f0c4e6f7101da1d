"""Own data in trials: a list dataset trains, validates and tests; the list layout scores exactly as the
Market-1501 layout on the same images; two sources train together and are tested each on its own split."""

import os
import shutil
from pathlib import Path

import pytest
import torch

import spaces
from trials.config import make_config
from trials.data import load_dataset, synthesize
from trials.data.splits import load_splits
from trials.evaluation.scoring import refresh_validation, score_tests
from trials.retrain import run_retrain
from trials.runtime.session import LocalSession

pytestmark = pytest.mark.slow
MARKET = "Market-1501-v15.09.15"
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def own_root(synthetic_root, tmp_path_factory) -> Path:
    """The session's Market-1501 (linked) beside a synthetic list dataset, `custom/`."""
    root = tmp_path_factory.mktemp("own-data")
    os.symlink(synthetic_root / MARKET, root / MARKET)
    synthesize("list", root, ids=24, seed=5)
    return root


def _untrained(num_classes: int):
    torch.manual_seed(0)
    return spaces.build_msinet("msmt", num_classes)


def test_market_images_through_a_list_layout_score_exactly_as_through_the_market_layout(synthetic_root, tmp_path):
    market = tmp_path / MARKET
    shutil.copytree(synthetic_root / MARKET, market)
    for file, folder in (("train.csv", "bounding_box_train"), ("query.csv", "query"),
                         ("gallery.csv", "bounding_box_test")):
        rows = [f"{folder}/{p.name},{p.name.split('_')[0]},{p.name.split('_')[1][1]}"
                for p in sorted((market / folder).iterdir()) if not p.name.startswith("-1")]
        (market / file).write_text("path,pid,camid\n" + "\n".join(rows) + "\n")
    as_market = load_dataset("market1501", tmp_path)
    as_list = load_dataset(f"list:{MARKET}", tmp_path)
    assert as_list.train == as_market.train  # same paths, labels and cameras, same order
    for split in ("query", "gallery"):
        assert [(s.path, s.camid) for s in getattr(as_list, split)] == \
            [(s.path, s.camid) for s in getattr(as_market, split)]

    metrics = []
    for name in ("market1501", f"list:{MARKET}"):
        cfg = make_config("retrain", {"scale": "smoke", "dataset": name, "data_dir": str(tmp_path)})
        splits = load_splits(cfg)
        model = _untrained(splits.num_classes)
        val = refresh_validation(model, splits, cfg, CPU, 0, 1, {})
        metrics.append({**val, **score_tests(model, splits, cfg, CPU, 0)})
    assert metrics[0]["val/num_valid_queries"] > 0 and metrics[0]["source/num_valid_queries"] > 0
    assert metrics[0] == metrics[1]


def test_a_synthesized_list_dataset_trains_validates_and_tests(own_root, tmp_path):
    config = {"scale": "smoke", "dataset": "list:custom", "data_dir": str(own_root), "out": str(tmp_path),
              "epochs": 2, "milestones": [2], "eval_interval": 1, "iters_per_epoch": 1, "ids_per_batch": 4}
    final = run_retrain(config, LocalSession(tmp_path, verbose=False))
    for key in ("val/mAP", "val/rank1", "source/mAP", "source/rank1", "source/mINP", "loss/ce_global"):
        assert key in final, key
    assert final["source/num_valid_queries"] == len(load_dataset("list:custom", own_root).query)
    assert final["num_classes"] == 12 - 2  # 12 training ids, 20 % (2) held out


def test_two_sources_train_on_both_id_sets_and_report_each_test_split(own_root, tmp_path):
    market = load_dataset("market1501", own_root)
    mine = load_dataset("list:custom", own_root)
    cfg = make_config("retrain", {"scale": "smoke", "dataset": ["market1501", "list:custom"],
                                  "data_dir": str(own_root), "val_fraction": 0})
    assert cfg.dataset == "market1501+list:custom"
    splits = load_splits(cfg)
    n_market, n_mine = market.num_train_pids, mine.num_train_pids
    assert splits.num_classes == n_market + n_mine == 20 + 12
    assert splits.train[:len(market.train)] == market.train  # the first source as it is
    shifted = splits.train[len(market.train):]
    assert [s.path for s in shifted] == [s.path for s in mine.train]
    assert [s.pid for s in shifted] == [s.pid + n_market for s in mine.train]  # ids offset past the first
    cam_offset = max(s.camid for s in market.train) + 1  # cameras kept apart too
    assert [s.camid for s in shifted] == [s.camid + cam_offset for s in mine.train]
    assert splits.source.num_train_cams == market.num_train_cams + mine.num_train_cams

    held = load_splits(make_config("retrain", {**cfg.to_dict(), "val_fraction": 0.2, "kind": "retrain"}))
    val_ids = {s.pid for s in held.val_gallery}
    assert len(val_ids) == round(0.2 * 32) and held.num_classes == 32 - len(val_ids)

    model = _untrained(splits.num_classes)
    metrics = score_tests(model, splits, cfg, CPU, 0)
    alone = score_tests(model, load_splits(make_config("retrain", {**cfg.to_dict(), "dataset": "market1501",
                                                                   "kind": "retrain"})), cfg, CPU, 0)
    assert metrics["source/market1501/mAP"] == alone["source/mAP"]  # each source on its own test split
    assert metrics["source/custom/num_valid_queries"] == len(mine.query)
    assert metrics["source/mAP"] == pytest.approx((metrics["source/market1501/mAP"]
                                                   + metrics["source/custom/mAP"]) / 2)

    config = {"scale": "smoke", "dataset": "market1501+list:custom", "data_dir": str(own_root), "out": str(tmp_path),
              "epochs": 1, "milestones": [1], "eval_interval": 1, "iters_per_epoch": 2, "ids_per_batch": 4}
    final = run_retrain(config, LocalSession(tmp_path, verbose=False))
    assert {"val/mAP", "source/market1501/mAP", "source/custom/mAP", "source/mAP"} <= set(final)
    assert final["num_classes"] == 32 - round(0.2 * 32)


def test_evaluate_command_scores_a_list_dataset_and_two_sources(own_root):
    import json
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-m", "trials.evaluate", "--dataset", "market1501+list:custom",
                           "--data-dir", str(own_root), "--height", "64"], cwd=root, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr
    metrics = json.loads(done.stdout.strip().splitlines()[-1])
    assert {"source/market1501/mAP", "source/custom/mAP", "source/mAP"} <= set(metrics)
    bad = subprocess.run([sys.executable, "-m", "trials.evaluate", "--dataset", "list:nothing", "--data-dir",
                          str(own_root)], cwd=root, capture_output=True, text=True, timeout=600)
    assert bad.returncode == 2 and bad.stderr.startswith("error: list:nothing") and "Traceback" not in bad.stderr


def test_a_list_dataset_as_cross_domain_target(own_root):
    cfg = make_config("retrain", {"scale": "smoke", "dataset": "market1501", "target_dataset": "list:custom",
                                  "data_dir": str(own_root), "val_fraction": 0})
    splits = load_splits(cfg)
    assert splits.target.name == "list:custom" and splits.target.listed
    metrics = score_tests(_untrained(splits.num_classes), splits, cfg, CPU, 0)
    assert metrics["target/num_valid_queries"] == len(splits.target.query) and 0 < metrics["target/mAP"] <= 1
