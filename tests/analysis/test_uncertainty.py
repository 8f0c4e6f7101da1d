"""Bootstrap intervals and beat probabilities on fixed data with a seed."""

import numpy as np
import pandas as pd
import pytest

from analysis.uncertainty import (
    anecdote_sentence,
    beat_probability,
    bootstrap_interval,
    candidate,
    choice,
    choice_text,
    cluster_interval,
    interval_summary,
    pair_table,
)

TCM = [0.62, 0.60, 0.65, 0.61, 0.63]
RANDOM = [0.41, 0.44, 0.40, 0.43, 0.42]


def test_the_interval_brackets_the_mean_is_seeded_and_narrows_with_more_data():
    low, high = bootstrap_interval(TCM, seed=0)
    assert low <= np.mean(TCM) <= high
    assert min(TCM) <= low and high <= max(TCM)
    assert bootstrap_interval(TCM, seed=0) == (low, high)  # same seed, same interval
    spread = np.random.default_rng(7).normal(size=50)
    assert bootstrap_interval(spread, seed=1) != bootstrap_interval(spread, seed=2)
    wide = bootstrap_interval(TCM, seed=0)
    narrow = bootstrap_interval(TCM * 20, seed=0)
    assert narrow[1] - narrow[0] < 0.5 * (wide[1] - wide[0])


def test_the_interval_matches_the_normal_approximation_on_a_large_sample():
    values = np.random.default_rng(5).normal(1.0, 2.0, size=400)
    low, high = bootstrap_interval(values, seed=3)
    half = 1.96 * values.std(ddof=1) / np.sqrt(values.size)
    assert low == pytest.approx(values.mean() - half, abs=0.05)
    assert high == pytest.approx(values.mean() + half, abs=0.05)


def test_degenerate_groups():
    assert bootstrap_interval([0.5]) == (0.5, 0.5)
    assert all(np.isnan(bootstrap_interval([])))
    assert np.isnan(beat_probability([], RANDOM))
    assert beat_probability([0.5], [0.5]) == 0.5  # a tie counts half


def test_beat_probability_separates_clear_and_overlapping_groups():
    assert beat_probability(TCM, RANDOM, seed=0) == 1.0
    assert beat_probability(RANDOM, TCM, seed=0) == 0.0
    overlapping = [0.61, 0.64, 0.59, 0.62, 0.63]
    p = beat_probability(TCM, overlapping, seed=0)
    assert 0.2 < p < 0.8
    assert beat_probability(TCM, overlapping, seed=0) == p


def _long() -> pd.DataFrame:
    groups = {"tcm": TCM, "random": RANDOM, "published": [0.58], "final": [0.7, 0.71]}
    rows = [{"trial": f"{g}/{i}", "group": g, "source/mAP": v} for g, vs in groups.items() for i, v in enumerate(vs)]
    return pd.DataFrame(rows)


def test_the_summary_gives_n_mean_interval_and_marks_small_groups_anecdotal():
    summary = interval_summary(_long(), "group", "source/mAP", seed=0).set_index("group")
    assert list(summary.index) == ["tcm", "random", "published", "final"]  # final is its own group
    assert summary.loc["tcm", "n"] == 5 and summary.loc["tcm", "mean"] == pytest.approx(np.mean(TCM))
    assert summary.loc["tcm", "ci_low"] == pytest.approx(bootstrap_interval(TCM, seed=0)[0])
    assert summary.loc["random", "ci_high"] == pytest.approx(bootstrap_interval(RANDOM, seed=1)[1])
    assert summary.loc["tcm", "best_trial"] == "tcm/2"
    assert list(summary["anecdotal"]) == [False, False, True, True]
    again = interval_summary(_long(), "group", "source/mAP", seed=0).set_index("group")
    pd.testing.assert_frame_equal(summary, again)
    sentence = anecdote_sentence(interval_summary(_long(), "group", "source/mAP"), "group")
    assert "published (n=1)" in sentence and "final (n=2)" in sentence and "tcm" not in sentence
    assert anecdote_sentence(interval_summary(_long().query("group == 'tcm'"), "group", "source/mAP"), "group") is None


def test_pairs_give_the_difference_and_who_beats_whom():
    pairs = pair_table(_long(), "group", "source/mAP", [("tcm", "random"), ("tcm", "published"),
                                                          ("tcm", "classification")], seed=0)
    assert list(zip(pairs["a"], pairs["b"], strict=True)) == [("tcm", "random"), ("tcm", "published")]
    first = pairs.iloc[0]
    assert first["difference"] == pytest.approx(np.mean(TCM) - np.mean(RANDOM))
    assert first["p_a_beats_b"] == 1.0 and not first["anecdotal"]
    assert pairs.iloc[1]["anecdotal"] and pairs.iloc[1]["n_b"] == 1


def test_the_validation_interval_resamples_identities_not_queries():
    """Queries of one identity move together: 4 identities with 8 queries each are 4 draws, not 32."""
    rng = np.random.default_rng(3)
    level = rng.uniform(0.1, 0.9, size=4)
    values = np.repeat(level, 8) + rng.normal(0, 0.01, size=32)
    pids = np.repeat(np.arange(4), 8)
    low, high = cluster_interval(values, pids, seed=0)
    assert low <= values.mean() <= high and cluster_interval(values, pids, seed=0) == (low, high)
    by_query = bootstrap_interval(values, seed=0)
    assert (high - low) > 2 * (by_query[1] - by_query[0])  # the query bootstrap would claim far more precision
    many = np.repeat(rng.uniform(0.1, 0.9, size=64), 2)  # 64 identities narrow it
    wide, narrow = cluster_interval(values, pids), cluster_interval(many, np.repeat(np.arange(64), 2))
    assert narrow[1] - narrow[0] < 0.5 * (wide[1] - wide[0])
    assert cluster_interval([0.3, 0.3], ["a", "b"]) == (0.3, 0.3)
    assert all(np.isnan(cluster_interval([], [])))


def test_a_choice_is_undecided_when_the_top_two_intervals_overlap():
    metrics = {"val/mAP": 0.54, "val/mAP_ci_low": 0.31, "val/mAP_ci_high": 0.78, "val/num_valid_queries": 8,
               "val/num_valid_ids": 4}
    best = candidate("retrain/a", metrics, "val/mAP")
    assert (best["value"], best["low"], best["queries"], best["ids"]) == (0.54, 0.31, 8, 4)
    close = candidate("retrain/b", {"val/mAP": 0.53, "val/mAP_ci_low": 0.29, "val/mAP_ci_high": 0.75}, "val/mAP")
    far = candidate("retrain/c", {"val/mAP": 0.10, "val/mAP_ci_low": 0.05, "val/mAP_ci_high": 0.2}, "val/mAP")
    undecided = choice([close, best, far])
    assert undecided["best"]["name"] == "retrain/a" and undecided["runner_up"]["name"] == "retrain/b"
    assert undecided["verdict"] == "undecided"
    text = choice_text(undecided, "val/mAP")
    assert text.startswith("retrain/a by val/mAP 0.5400 (95 % CI 0.310-0.780) on 8 queries of 4 identities")
    assert "runner-up retrain/b 0.5300 (95 % CI 0.290-0.750)" in text and text.endswith("undecided")
    assert choice([best, far])["verdict"] == "decided" and choice([far, best], "min")["best"]["name"] == "retrain/c"
    assert choice([best])["verdict"] == "only candidate"
    assert choice([best, candidate("x", {"val/mAP": 0.2}, "val/mAP")])["verdict"] == "no interval"
    assert choice([candidate("x", {}, "val/mAP")]) is None
    assert "no trial has val/mAP" in choice_text(None, "val/mAP")


def test_the_intervals_need_no_pandas():
    """The trials compute their validation intervals with this module; the GPU machine has no pandas."""
    import subprocess
    import sys
    from pathlib import Path

    code = ("import sys; sys.modules['pandas'] = None\n"
            "from analysis.uncertainty import cluster_interval, interval_keys\n"
            "print(interval_keys('val/mAP'), cluster_interval([1.0, 0.0], [1, 2]))")
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "val/mAP_ci_low" in done.stdout
