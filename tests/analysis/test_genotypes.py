"""Genotype statistics: slot parsing, operation counts over search trials, α histories."""

import numpy as np
import pandas as pd
import pytest

from analysis.genotypes import (
    NUM_SLOTS,
    OPERATIONS,
    alpha_frame,
    final_alpha,
    genotype_slots,
    operation_counts,
    slot_label,
    slot_table,
)


def test_the_slot_layout_and_operation_order_are_those_of_spaces():
    from spaces import genotype

    assert OPERATIONS == genotype.OPERATIONS
    assert NUM_SLOTS == genotype.NUM_SLOTS
    msmt = genotype.NAMED_GENOTYPES["msmt"]
    assert genotype_slots(str(msmt)) == list(msmt.ops)
    assert [slot_label(2 * k) for k in range(3)] == ["cell 0 step 1", "cell 1 step 1", "cell 2 step 1"]


@pytest.mark.parametrize("text", [None, float("nan"), "", "msmt", "random:3", "exc-ag/exc-none",
                                  "exc-ag/exc-none/none-cross_att/exc-ag/exc-exc/none-conv"])
def test_missing_or_malformed_genotypes_read_as_none(text):
    assert genotype_slots(text) is None


def test_operation_counts_match_the_logged_search_genotypes(study_store, study_runs):
    counts = operation_counts(study_runs)
    search = study_store.by_kind("search", "FINISHED")
    assert list(counts.columns) == ["slot", "cell", "step", *OPERATIONS, "trials"]
    assert list(counts["slot"]) == list(range(12))
    assert (counts[list(OPERATIONS)].sum(axis=1) == len(search)).all()
    assert (counts["trials"] == len(search)).all()
    for slot in range(12):
        winners = [genotype_slots(t.genotype)[slot] for t in search]
        for op in OPERATIONS:
            assert counts.loc[slot, op] == winners.count(op)


def test_operation_counts_leave_unfinished_or_retrain_trials_out_unless_asked():
    runs = pd.DataFrame({"kind": ["search", "search", "retrain"], "status": ["FINISHED", "RUNNING", "FINISHED"],
                         "genotype": ["ag-ag/ag-ag/ag-ag/ag-ag/ag-ag/ag-ag"] * 3})
    assert operation_counts(runs)["trials"].iloc[0] == 1
    everything = operation_counts(runs, statuses=None)
    assert everything["trials"].iloc[0] == 2 and (everything["ag"] == 2).all()


def test_alpha_frame_is_the_long_form_of_the_history_array():
    history = np.random.default_rng(0).dirichlet(np.ones(4), size=(3, 12))
    frame = alpha_frame(history)
    assert list(frame.columns) == ["epoch", "slot", "cell", "step", "operation", "weight"]
    assert len(frame) == 3 * 12 * 4
    row = frame[(frame["epoch"] == 2) & (frame["slot"] == 5) & (frame["operation"] == "ag")]
    assert row["weight"].item() == pytest.approx(history[1, 5, 2])
    assert row["cell"].item() == 2 and row["step"].item() == 2
    np.testing.assert_allclose(final_alpha(frame).to_numpy(), history[-1])


def test_an_empty_history_has_an_empty_final_alpha():
    assert alpha_frame(np.zeros((0, 12, 4))).empty
    alpha = final_alpha(alpha_frame(np.zeros((0, 12, 4))))
    assert alpha.empty and list(alpha.columns) == list(OPERATIONS)


def test_slot_table_marks_the_slots_where_genotypes_differ():
    a = "exc-ag/exc-none/none-cross_att/exc-ag/exc-exc/none-cross_att"
    b = "exc-ag/exc-none/none-cross_att/exc-ag/ag-exc/none-none"
    table = slot_table({"a": a, "b": b, "broken": None})
    assert list(table["a"]) == genotype_slots(a)
    assert table["broken"].isna().all()
    assert table["differs"].all()  # the unreadable genotype differs everywhere
    pair = slot_table({"a": a, "b": b})
    assert list(pair.index[pair["differs"]]) == [8, 11]
