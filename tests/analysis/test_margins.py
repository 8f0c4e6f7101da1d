"""Decision margins and agreement on hand-made α histories: decided, undecided and tied slots."""

import numpy as np
import pandas as pd
import pytest

from analysis.genotypes import NUM_SLOTS, OPERATIONS, alpha_frame
from analysis.margins import (
    agreement,
    counts_with_margins,
    decision_summary,
    decision_text,
    marked_genotype,
    slot_margins,
    trial_margins,
    verdict_sentences,
    weight_margins,
)

GENOTYPE = "exc-ag/exc-none/none-cross_att/exc-ag/exc-exc/none-cross_att"


def _history(last_epoch: np.ndarray, epochs: int = 3) -> pd.DataFrame:
    """`epochs` epochs of uniform weights ending in `last_epoch` (12 x 4)."""
    array = np.full((epochs, NUM_SLOTS, 4), 0.25)
    array[-1] = last_epoch
    return alpha_frame(array)


def _decided(genotype: str, top: float) -> np.ndarray:
    weights = np.full((NUM_SLOTS, 4), (1 - top) / 3)
    ops = [OPERATIONS.index(op) for group in genotype.split("/") for op in group.split("-")]
    weights[np.arange(NUM_SLOTS), ops] = top
    return weights


def _smoke_like() -> np.ndarray:
    """What a smoke search leaves: every weight between 0.246 and 0.256."""
    weights = np.tile([0.256, 0.250, 0.248, 0.246], (NUM_SLOTS, 1))
    return weights / weights.sum(axis=1, keepdims=True)


def test_margin_entropy_winner_and_runner_up_per_slot():
    last = _decided(GENOTYPE, 0.7)
    last[3] = [0.1, 0.45, 0.42, 0.03]  # slot 3: exc just ahead of ag
    table = slot_margins(_history(last))
    assert list(table["slot"]) == list(range(NUM_SLOTS))
    assert table.loc[0, "winner"] == "exc" and table.loc[0, "margin"] == pytest.approx(0.7 - 0.1)
    assert table.loc[3, "winner"] == "exc" and table.loc[3, "runner_up"] == "ag"
    assert table.loc[3, "margin"] == pytest.approx(0.03)
    assert not table.loc[3, "decided"] and table.drop(index=3)["decided"].all()
    expected = -sum(p * np.log(p) for p in (0.1, 0.45, 0.42, 0.03))
    assert table.loc[3, "entropy"] == pytest.approx(expected)
    assert table.loc[0, "entropy"] < table.loc[3, "entropy"]


def test_only_the_last_epoch_counts_and_uniform_weights_have_maximal_entropy():
    array = np.stack([_decided(GENOTYPE, 0.9), np.full((NUM_SLOTS, 4), 0.25)])
    table = slot_margins(alpha_frame(array))
    assert (table["margin"] == 0).all() and not table["decided"].any()
    assert list(table["entropy"]) == pytest.approx([np.log(4)] * NUM_SLOTS)


def test_a_smoke_like_genotype_is_undecided_in_words():
    histories = {"search/decided": _history(_decided(GENOTYPE, 0.6)), "search/smoke": _history(_smoke_like()),
                 "search/empty": alpha_frame(np.zeros((0, NUM_SLOTS, 4)))}
    margins = trial_margins(histories)
    assert set(margins["trial"]) == {"search/decided", "search/smoke"} and len(margins) == 2 * NUM_SLOTS
    summary = decision_summary(margins).set_index("trial")
    assert summary.loc["search/smoke", "verdict"] == "undecided"
    assert summary.loc["search/smoke", "decided_slots"] == 0
    assert summary.loc["search/smoke", "max_margin"] < 0.011
    assert summary.loc["search/decided", "verdict"] == "decided"
    assert summary.loc["search/decided", "decided_slots"] == NUM_SLOTS
    sentences = verdict_sentences(decision_summary(margins))
    assert "the whole genotype is undecided" in sentences[1] and "search/smoke" in sentences[1]
    assert "undecided" not in sentences[0]


def test_a_half_decided_genotype_is_partly_decided():
    last = _decided(GENOTYPE, 0.6)
    last[:6] = _smoke_like()[:6]
    last[6] = [0.29, 0.25, 0.23, 0.23]  # margin 0.04: below the threshold
    last[7] = [0.31, 0.25, 0.22, 0.22]  # margin 0.06: above it
    margins = trial_margins({"t": _history(last)})
    assert not margins.loc[6, "decided"] and margins.loc[7, "decided"]
    summary = decision_summary(margins)
    assert summary.loc[0, "verdict"] == "partly decided" and summary.loc[0, "decided_slots"] == 5
    assert "partly decided" in verdict_sentences(summary)[0]


def _runs(genotypes: dict[str, str], launch: str = "L1", status: str = "FINISHED") -> pd.DataFrame:
    return pd.DataFrame({"trial": list(genotypes), "kind": "search", "status": status, "launch": launch,
                         "genotype": list(genotypes.values())})


def test_counts_show_the_mean_margin_of_the_trials_behind_each_count():
    other = "ag-ag/exc-none/none-cross_att/exc-ag/exc-exc/none-cross_att"  # differs from GENOTYPE in slot 0
    runs = pd.concat([_runs({"a": GENOTYPE, "b": GENOTYPE, "c": other}),
                      _runs({"d": other}, status="FAILED")], ignore_index=True)
    margins = trial_margins({"a": _history(_decided(GENOTYPE, 0.7)), "b": _history(_decided(GENOTYPE, 0.4))})
    table = counts_with_margins(runs, margins)
    assert (table["trials"] == 3).all()
    assert table.loc[0, "exc"] == f"2 (Δ {np.mean([0.7 - 0.1, 0.4 - 0.2]):.3f})"
    assert table.loc[0, "ag"] == "1 (Δ ?)"  # trial c has no α history
    assert table.loc[0, "none"] == "" and table.loc[0, "cross_att"] == ""


def test_agreement_per_slot_within_each_launch():
    flipped = "ag-ag/exc-none/none-cross_att/exc-ag/exc-exc/none-cross_att"
    third = "none-ag/exc-none/none-cross_att/exc-ag/exc-exc/none-cross_att"
    runs = pd.concat([_runs({"a": GENOTYPE, "b": GENOTYPE, "c": flipped, "d": third}),
                      _runs({"e": GENOTYPE}, launch="L2"),
                      _runs({"f": flipped}, launch="L2", status="RUNNING")], ignore_index=True)
    table = agreement(runs)
    first = table[table["launch"] == "L1"].set_index("slot")
    assert (first["trials"] == 4).all()
    assert first.loc[0, "most_chosen"] == "exc" and first.loc[0, "share"] == pytest.approx(0.5)
    assert first.loc[0, "pair_agreement"] == pytest.approx(1 / 6)  # only the pair (a, b) of 6 agrees
    assert (first.loc[1:, "share"] == 1).all() and (first.loc[1:, "pair_agreement"] == 1).all()
    second = table[table["launch"] == "L2"]
    assert (second["trials"] == 1).all() and second["pair_agreement"].isna().all()
    tied = agreement(_runs({"a": GENOTYPE, "c": flipped})).set_index("slot")
    assert tied.loc[0, "most_chosen"] == "exc / ag" and tied.loc[0, "share"] == 0.5
    assert tied.loc[0, "pair_agreement"] == 0 and tied.loc[1, "most_chosen"] == "ag"  # slot 1: both ag
    assert agreement(_runs({}, status="FINISHED")).empty


def test_a_searched_genotype_is_shown_with_its_undecided_slots_marked():
    weights = _decided(GENOTYPE, 0.40)  # margin 0.40 - 0.20 = 0.20: decided
    weights[0] = [0.24, 0.26, 0.25, 0.25]  # slot 0: exc by 0.01, undecided
    weights[5] = [0.30, 0.20, 0.20, 0.30]  # slot 5: a tie, margin 0
    margins = weight_margins(weights)
    assert margins[0] == pytest.approx(0.01) and margins[5] == 0 and margins[1] == pytest.approx(0.2)
    assert list(margins) == pytest.approx(list(slot_margins(_history(weights))["margin"]))  # one definition
    assert marked_genotype(GENOTYPE, margins) == "exc?-ag/exc-none/none-cross_att?/exc-ag/exc-exc/none-cross_att"
    assert decision_text(GENOTYPE, weights) == ("exc?-ag/exc-none/none-cross_att?/exc-ag/exc-exc/none-cross_att "
                                                "(10 of 12 slots decided, margins 0.000-0.200)")
    untrained = np.full((NUM_SLOTS, 4), 0.25) + np.linspace(0, 0.004, 4)
    assert decision_text(GENOTYPE, untrained).count("?") == NUM_SLOTS
    assert "(0 of 12 slots decided" in decision_text(GENOTYPE, untrained)
    assert decision_text(GENOTYPE, None) == GENOTYPE and decision_text("not a genotype", weights) == "not a genotype"
