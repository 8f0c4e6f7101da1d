"""MLflow -> DataFrames: the runs frame holds exactly what the trials logged, per the platform's contract."""

import numpy as np
import pytest

from analysis.runs import (
    RUN_COLUMNS,
    LaunchNotFound,
    RunNotFound,
    StudyNotFound,
    default_tracking_uri,
    experiment_names,
    load_alpha_history,
    load_cmc,
    load_launches,
    load_runs,
    load_runs_by_id,
    select_launches,
    space_names,
)


def test_the_default_store_is_an_absolute_sqlite_file_under_runs():
    uri = default_tracking_uri()
    assert uri.startswith("sqlite:////") and uri.endswith("/runs/mlflow.db")


def test_load_runs_gives_one_row_per_trial_of_the_latest_launch(study_store, study_runs):
    runs = study_runs
    assert list(runs.columns[:len(RUN_COLUMNS)]) == RUN_COLUMNS
    assert sorted(runs["trial"]) == sorted(study_store.trials)
    assert set(runs["parent_run_id"]) == {study_store.parent_run_id}
    assert set(runs["launch"]) == {"L2"}
    for row in runs.itertuples():
        trial = study_store.trials[row.trial]
        assert row.run_id == trial.run_id
        assert (row.phase, row.kind, row.status) == (trial.phase, trial.kind, trial.status)
        assert (row.group if isinstance(row.group, str) else None) == trial.group
        assert (row.genotype if isinstance(row.genotype, str) else None) == trial.genotype
        assert (row.error if isinstance(row.error, str) else None) == trial.error
        assert row.stopped_early == trial.stopped_early
        assert space_names(row.space) == space_names(trial.space)
        if trial.wall_seconds is None:
            assert np.isnan(row.wall_seconds)
        else:
            assert row.wall_seconds == pytest.approx(trial.wall_seconds)


def test_params_metrics_and_tags_become_prefixed_columns(study_store, study_runs):
    runs = study_runs.set_index("trial")
    for name, trial in study_store.trials.items():
        for key, value in trial.params.items():
            assert runs.loc[name, f"params.{key}"] == value
        for key, value in trial.final.items():
            assert runs.loc[name, f"metrics.{key}"] == pytest.approx(value), (name, key)
    assert runs.loc["retrain/b_00000", "tags.env.device"] == "cpu"
    assert runs.loc["retrain/b_00000", "tags.mlflow.parentRunId"] == study_store.parent_run_id


def test_launches_latest_one_or_all(study_store):
    launches = load_launches(study_store.uri, "nas")
    assert list(launches["launch"]) == ["L1", "L2"]
    assert list(select_launches(launches)["run_id"]) == [study_store.parent_run_id]
    assert list(select_launches(launches, "L1")["run_id"]) == [study_store.old_parent_run_id]
    assert list(select_launches(launches, study_store.old_parent_run_id)["launch"]) == ["L1"]
    assert list(load_runs(study_store.uri, "nas", "L1")["trial"]) == ["retrain/old_00000"]
    assert len(load_runs(study_store.uri, "nas", "all")) == len(study_store.trials) + 1
    row = launches.iloc[-1]
    assert (row["metric"], row["mode"], row["scale"], row["test_metric_optimised"]) == ("val/mAP", "max", "smoke",
                                                                                          False)
    with pytest.raises(LaunchNotFound, match=r"no launch 'L9'.*L1, L2"):
        select_launches(launches, "L9")


def test_an_unknown_study_names_the_experiments_that_exist(study_store):
    with pytest.raises(StudyNotFound) as error:
        load_runs(study_store.uri, "nope")
    message = str(error.value)
    assert "'nope'" in message
    for name in ("nas", "empty", "idle"):
        assert name in message
    assert set(experiment_names(study_store.uri)) >= {"nas", "empty", "idle"}


def test_a_missing_local_store_is_reported_not_created(tmp_path):
    uri = f"sqlite:///{tmp_path / 'absent.db'}"
    with pytest.raises(StudyNotFound, match="no store exists there yet"):
        load_launches(uri, "nas")
    with pytest.raises(RunNotFound):
        load_runs_by_id(uri, ["0" * 32])
    assert not (tmp_path / "absent.db").exists()


def test_a_study_without_launches_or_trials_gives_an_empty_frame(study_store):
    for study in ("empty", "idle"):
        runs = load_runs(study_store.uri, study)
        assert runs.empty and list(runs.columns) == RUN_COLUMNS
    assert load_launches(study_store.uri, "empty").empty


def test_runs_by_id_keep_the_given_order_and_unknown_ids_are_named(study_store):
    ids = [study_store.trials[name].run_id for name in ("retrain/b_00004", "search/a_00000")]
    assert list(load_runs_by_id(study_store.uri, ids)["trial"]) == ["retrain/b_00004", "search/a_00000"]
    with pytest.raises(RunNotFound, match=r"run 'deadbeef' not found.*nas"):
        load_runs_by_id(study_store.uri, [ids[0], "deadbeef"])


def test_alpha_history_is_read_from_the_npy_artefact(study_store):
    trial = study_store.trials["search/a_00001"]
    history = load_alpha_history(study_store.uri, trial.run_id)
    assert history["epoch"].max() == len(trial.alpha)
    assert list(history["operation"][:4]) == ["none", "exc", "ag", "cross_att"]  # rows: epoch, slot, operation
    np.testing.assert_allclose(history["weight"].to_numpy().reshape(trial.alpha.shape), trial.alpha)
    retrain = study_store.trials["retrain/b_00000"]
    assert load_alpha_history(study_store.uri, retrain.run_id).empty


def test_cmc_curves_are_read_from_metrics_json(study_store, study_runs):
    chosen = study_runs[study_runs["trial"].isin(["retrain/b_00000", "cross/c_00001", "search/a_00000"])]
    cmc = load_cmc(study_store.uri, chosen)
    assert list(cmc.columns) == ["trial", "run_id", "rank", "rate"]
    assert set(cmc["trial"]) == {"retrain/b_00000", "cross/c_00001"}  # a search trial has no metrics.json
    curve = cmc[cmc["trial"] == "retrain/b_00000"].sort_values("rank")
    assert list(curve["rank"]) == list(range(1, 11))
    assert list(curve["rate"]) == pytest.approx(study_store.trials["retrain/b_00000"].cmc["source/cmc"])
    assert set(load_cmc(study_store.uri, chosen, "target/cmc")["trial"]) == {"cross/c_00001"}
