"""Runs side by side: differing params, metrics, genotype slots marked."""

import pytest

from analysis.compare import compare_runs, format_comparison, run_labels
from analysis.runs import load_runs_by_id


def _runs(study_store, *names):
    return load_runs_by_id(study_store.uri, [study_store.trials[name].run_id for name in names])


@pytest.mark.slow
def test_compare_shows_differing_params_all_metrics_and_marks_differing_slots(study_store):
    runs = _runs(study_store, "retrain/b_00000", "retrain/b_00001")
    table = compare_runs(runs)
    assert list(table.columns) == ["section", "field", "retrain/b_00000", "retrain/b_00001", "differs"]
    params = table[table["section"] == "param"]
    assert list(params["field"]) == ["genotype", "lr"]  # only what differs
    assert (params["differs"] == "*").all()
    metrics = table[table["section"] == "metric"].set_index("field")
    assert list(metrics.index[:2]) == ["source/mAP", "source/mINP"]  # test scores first
    assert metrics.loc["source/mAP", "retrain/b_00000"] == 0.62
    assert metrics.loc["epoch", "differs"] == ""
    slots = table[table["section"] == "slot"]
    assert len(slots) == 12
    a = study_store.trials["retrain/b_00000"].genotype.replace("/", "-").split("-")
    b = study_store.trials["retrain/b_00001"].genotype.replace("/", "-").split("-")
    assert list(slots["differs"] == "*") == [x != y for x, y in zip(a, b, strict=True)]
    assert list(slots["retrain/b_00001"]) == b


def test_one_run_shows_every_param_and_all_params_can_be_asked_for(study_store):
    single = compare_runs(_runs(study_store, "retrain/b_00000"))
    assert len(single[single["section"] == "param"]) == len(study_store.trials["retrain/b_00000"].params)
    pair = compare_runs(_runs(study_store, "retrain/b_00000", "retrain/b_00004"), all_params=True)
    assert "epochs" in set(pair.loc[pair["section"] == "param", "field"])


def test_the_text_form_is_a_readable_table(study_store):
    text = format_comparison(compare_runs(_runs(study_store, "retrain/b_00000", "retrain/b_00007")))
    lines = text.splitlines()
    assert "retrain/b_00000" in lines[0] and "differs" in lines[0]
    slot_lines = [line for line in lines if " cell " in line and " step " in line]
    assert len(slot_lines) == 12
    assert not any(line.rstrip().endswith("*") for line in slot_lines)  # the failed trial's spec: same genotype
    assert any("FAILED" in line and line.rstrip().endswith("*") for line in lines)


def test_repeated_trial_names_get_the_run_id_to_tell_them_apart():
    import pandas as pd

    runs = pd.DataFrame({"trial": ["retrain/x", "retrain/x", None], "run_id": ["aaaaaaaa11", "bbbbbbbb22", "c" * 32]})
    assert run_labels(runs) == ["retrain/x [aaaaaaaa]", "retrain/x [bbbbbbbb]", "c" * 32]
