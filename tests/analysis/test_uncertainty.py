"""Bootstrap intervals and beat probabilities on fixed data with a seed."""

import numpy as np
import pandas as pd
import pytest

from analysis.uncertainty import (
    anecdote_sentence,
    beat_probability,
    bootstrap_interval,
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
