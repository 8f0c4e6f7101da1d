"""Tables from the runs frame: leaderboard, the paper's comparisons, the Pareto front of accuracy vs cost."""

import numpy as np
import pandas as pd
import pytest

from analysis.tables import (
    SCORE_METRICS,
    cost_table,
    genotype_origin,
    leaderboard,
    pareto_front,
    published_comparison,
    sam_comparison,
    status_counts,
    summarise,
    supervision_comparison,
)


def test_leaderboard_is_sorted_by_the_study_metric_with_trials_lacking_it_last(study_store, study_runs):
    board = leaderboard(study_runs, "val/mAP", "max")
    # ties by name; a trial stopped early (its value from fewer epochs) after those that ran every epoch, unranked
    logged = sorted(study_store.trials.values(), key=lambda t: (t.stopped_early, -t.final["val/mAP"], t.name))
    assert list(board["trial"]) == [t.name for t in logged]
    assert list(board["val/mAP"]) == pytest.approx([t.final["val/mAP"] for t in logged])
    ranked = [t for t in logged if not t.stopped_early]
    assert list(board["rank"][:len(ranked)]) == list(range(1, len(ranked) + 1))
    assert board["rank"][len(ranked):].isna().all() and board["stopped_early"][len(ranked):].all()
    source = {t.name: t.final.get("source/mAP", np.nan) for t in logged}
    np.testing.assert_allclose(board["source/mAP"], [source[name] for name in board["trial"]])

    by_source = leaderboard(study_runs, "source/mAP", "max")
    with_source = [t for t in logged if "source/mAP" in t.final and not t.stopped_early]
    assert list(by_source["trial"][:len(with_source)]) == [t.name for t in sorted(with_source,
                                                                                  key=lambda t: -t.final["source/mAP"])]
    assert by_source["rank"][len(with_source):].isna().all()
    lowest_first = leaderboard(study_runs, "val/mAP", "min")
    assert list(lowest_first["trial"]) == [t.name for t in sorted(logged, key=lambda t: (t.stopped_early,
                                                                                         t.final["val/mAP"], t.name))]


def test_leaderboard_columns(study_store, study_runs):
    board = leaderboard(study_runs)
    assert list(board.columns[:6]) == ["rank", "trial", "phase", "kind", "group", "genotype"]
    for column in ("lr", "arch_lr", "triplet_margin", *SCORE_METRICS, "params", "macs", "epochs_done", "wall_seconds",
                   "status", "stopped_early", "error", "run_id"):
        assert column in board, column
    row = board.set_index("trial").loc["retrain/b_00001"]
    assert row["lr"] == pytest.approx(0.05)  # params are text in MLflow; hyperparameters read back as numbers
    # one definition of size: without the classifier (`params_no_classifier`), as the platform's leaderboard
    assert row["params"] == 2_328_035 and row["macs"] == pytest.approx(1.15e9) and row["epochs_done"] == 3
    assert row["val/mAP_ci_low"] < row["val/mAP"] < row["val/mAP_ci_high"]
    assert (row["val_queries"], row["val_ids"]) == (30, 15)
    assert board.set_index("trial").loc["search/a_00000", "genotype_margins"].startswith("exc-ag/")
    failed = board.set_index("trial").loc["retrain/b_00007"]
    assert failed["status"] == "FAILED" and "NaN" in failed["error"]
    assert board.set_index("trial").loc["retrain/b_00008", "status"] == "RUNNING"
    assert board.set_index("trial").loc["retrain/b_00003", "stopped_early"]
    with pytest.raises(ValueError, match="mode"):
        leaderboard(study_runs, "val/mAP", "best")


def test_a_trial_without_a_genotype_tag_shows_its_genotype_param(study_runs):
    board = leaderboard(study_runs).set_index("trial")
    assert board.loc["retrain/b_00007", "genotype"] == study_runs.set_index("trial").loc["retrain/b_00007",
                                                                                          "params.genotype"]


def test_status_counts(study_runs):
    counts = status_counts(study_runs).set_index("status")
    assert counts["trials"].to_dict() == {"FAILED": 1, "FINISHED": 14, "RUNNING": 1}
    assert counts.loc["FINISHED", "stopped_early"] == 1


def test_supervision_comparison_groups_finished_retrains(study_store, study_runs):
    long = supervision_comparison(study_runs)
    assert list(dict.fromkeys(long["group"])) == ["tcm", "classification", "random", "published"]
    expected = {t.name: t.final["source/mAP"] for t in study_store.by_kind("retrain", "FINISHED") if t.group}
    assert dict(zip(long["trial"], long["source/mAP"], strict=True)) == pytest.approx(expected)
    summary = summarise(long, "group", "source/mAP").set_index("group")
    assert summary.loc["tcm", "n"] == 2 and summary.loc["tcm", "mean"] == pytest.approx(0.61)
    assert summary.loc["random", "best_trial"] == "retrain/b_00005"


def test_sam_comparison_is_cross_domain_only(study_store, study_runs):
    long = sam_comparison(study_runs)
    assert list(long["sam_mode"]) == ["none", "pos", "neg", "pos_neg"]
    assert list(long["target/mAP"]) == pytest.approx([0.20, 0.24, 0.22, 0.27])
    assert set(long["trial"]) == {t.name for t in study_store.trials.values() if "target/mAP" in t.final}


def test_genotype_origin_and_the_published_comparison(study_runs):
    origin = dict(zip(study_runs["trial"], genotype_origin(study_runs), strict=True))
    assert origin["retrain/b_00006"] == "published"  # group published
    assert origin["cross/c_00000"] == "published"  # param genotype msmt
    assert origin["retrain/b_00004"] == "random" and origin["retrain/b_00000"] == "searched"
    table = published_comparison(study_runs)
    assert list(table.columns) == ["trial", "phase", "origin", "genotype", "source/mAP", "target/mAP", "run_id"]
    assert set(table["origin"]) == {"published", "searched"}
    assert "retrain/b_00004" not in set(table["trial"]) and "retrain/b_00007" not in set(table["trial"])


def test_pareto_front_keeps_the_undominated_rows():
    frame = pd.DataFrame({"cost": [1, 2, 2, 3, 4, np.nan, 1], "acc": [0.5, 0.7, 0.6, 0.7, 0.9, 0.99, 0.5]},
                         index=list("abcdefg"))
    mask = pareto_front(frame, "cost", "acc")
    assert list(mask.index) == list("abcdefg") and mask.dtype == bool
    assert list(frame.index[mask]) == ["a", "b", "e", "g"]  # equal points (a, g) do not dominate each other
    assert list(frame.index[pareto_front(frame, "cost", "acc", minimise_x=False)]) == ["e"]


def test_cost_table_marks_the_front_against_params_and_macs(study_runs):
    table = cost_table(study_runs)
    assert table["source/mAP"].is_monotonic_decreasing
    assert set(table.loc[table["pareto_params"], "trial"]) == {"retrain/b_00000", "retrain/b_00004"}
    assert set(table.loc[table["pareto_macs"], "trial"]) == {"retrain/b_00000", "retrain/b_00004"}
    assert "retrain/b_00007" not in set(table["trial"])  # failed: no cost, no score


def test_cost_table_carries_measured_latency_and_its_front():
    runs = pd.DataFrame({"status": "FINISHED", "kind": "retrain", "trial": ["a", "b", "c"], "genotype": "g",
                         "run_id": ["1", "2", "3"], "metrics.params_no_classifier": [2e6, 2e6, 2e6],
                         "metrics.macs": [1e8, 1e8, 1e8], "metrics.source/mAP": [0.5, 0.6, 0.4],
                         "metrics.latency/b1_ms_per_image": [3.0, 5.0, 2.0],
                         "metrics.latency/b64_images_per_second": [900.0, 600.0, 1200.0]})
    table = cost_table(runs).set_index("trial")
    assert table.loc["a", "latency_ms"] == 3.0 and table.loc["c", "images_per_second"] == 1200.0
    # same params and MACs: only the measured latency tells a, b and c apart
    assert set(table.index[table["pareto_latency"]]) == {"a", "b", "c"}
    assert set(table.index[table["pareto_params"]]) == {"b"}
    without = cost_table(runs.drop(columns=["metrics.latency/b1_ms_per_image"]))
    assert without["latency_ms"].isna().all() and not without["pareto_latency"].any()
    # c measured 2.0 ms on a device another trial shared: shown, but not weighed against a and b
    runs["tags.msinet.latency_shared"] = ["no", "no", "yes: a 0.5 share of the GPU (packed trials)"]
    table = cost_table(runs).set_index("trial")
    assert table.loc["c", "latency_ms"] == 2.0 and not table.loc["c", "latency_comparable"]
    assert set(table.index[table["pareto_latency"]]) == {"a", "b"}
