"""Trials that early stopping ended are PRUNED in the Optuna study, with their intermediate values, not
COMPLETE with an early value that TPE would take for a finished one; intermediate values are the evaluated
ones only, the last included; objectives are named and trials carry the platform's user attributes."""

import optuna
from study_optuna import PrunedAwareOptunaSearch

from analysis.launch_state import fail_running_optuna


def test_a_trial_stopped_before_its_planned_epochs_is_pruned(tmp_path):
    from ray import tune

    storage = f"sqlite:///{tmp_path}/optuna.db"
    search = PrunedAwareOptunaSearch(6, seed=0, study_name="s", storage=optuna.storages.RDBStorage(storage))
    search.set_search_properties("val/mAP", "max", {"lr": tune.loguniform(0.01, 0.1)})
    for trial_id, last_epoch in (("stopped", 2), ("finished", 6)):
        search.suggest(trial_id)
        for epoch in range(1, last_epoch + 1):
            search.on_trial_result(trial_id, {"val/mAP": 0.1 * epoch, "val/epoch": epoch, "epoch": epoch,
                                              "training_iteration": epoch})
        search.on_trial_complete(trial_id, {"val/mAP": 0.1 * last_epoch, "val/epoch": last_epoch, "epoch": last_epoch,
                                            "training_iteration": last_epoch, "config": {}})
    trials = optuna.load_study(study_name="s", storage=storage).trials
    assert [t.state for t in trials] == [optuna.trial.TrialState.PRUNED, optuna.trial.TrialState.COMPLETE]
    assert trials[0].intermediate_values == {1: 0.1, 2: 0.2}
    assert trials[1].value == 0.6000000000000001


def test_a_failed_trial_stays_failed(tmp_path):
    from ray import tune

    storage = f"sqlite:///{tmp_path}/optuna.db"
    search = PrunedAwareOptunaSearch(6, seed=0, study_name="s", storage=optuna.storages.RDBStorage(storage))
    search.set_search_properties("val/mAP", "max", {"lr": tune.loguniform(0.01, 0.1)})
    search.suggest("broken")
    search.on_trial_complete("broken", None, error=True)
    assert optuna.load_study(study_name="s", storage=storage).trials[0].state == optuna.trial.TrialState.FAIL


def test_an_interrupted_trial_is_failed_and_continues_in_a_new_trial(tmp_path):
    from ray import tune

    storage = f"sqlite:///{tmp_path}/optuna.db"
    search = PrunedAwareOptunaSearch(4, seed=0, study_name="s", storage=optuna.storages.RDBStorage(storage))
    search.set_search_properties("val/mAP", "max", {"lr": tune.loguniform(0.01, 0.1)})
    params = search.suggest("t")
    search.on_trial_result("t", {"val/mAP": 0.1, "val/epoch": 1, "epoch": 1, "training_iteration": 1})
    assert fail_running_optuna(storage, "s") == 1  # the driver stopped (Ctrl-C) or was found dead
    assert fail_running_optuna(storage, "missing-study") == 0
    for epoch in (2, 3, 4):  # the restored Tune trial continues
        search.on_trial_result("t", {"val/mAP": 0.1 * epoch, "val/epoch": epoch, "epoch": epoch,
                                     "training_iteration": epoch})
    search.on_trial_complete("t", {"val/mAP": 0.4, "val/epoch": 4, "epoch": 4, "training_iteration": 4, "config": {}})
    first, second = optuna.load_study(study_name="s", storage=storage).trials
    assert first.state == optuna.trial.TrialState.FAIL and first.intermediate_values == {1: 0.1}
    assert second.state == optuna.trial.TrialState.COMPLETE and second.value == 0.4
    assert second.params == first.params == {"lr": params["lr"]}
    assert second.user_attrs["continues_trial"] == first.number


def annotate(trial_id, result, stopped):
    """What study_tune hands the searcher (study_notes.optuna_attributes), reduced to its contract."""
    return {"genotype": "exc?-ag/none-none/exc-exc/ag-ag/none-exc/exc-ag", "mlflow_run_id": f"run-{trial_id}",
            "stopped_early": stopped}


def test_intermediate_values_are_the_evaluated_ones_and_the_last_one_counts(tmp_path):
    """eval_interval 2: val/mAP is carried on odd epochs and not reported there; the scheduler's STOP on the
    last result skips on_trial_result, yet that value is the objective and the last intermediate value."""
    from ray import tune

    storage = f"sqlite:///{tmp_path}/optuna.db"
    search = PrunedAwareOptunaSearch(6, annotate=annotate, seed=0, study_name="s",
                                     storage=optuna.storages.RDBStorage(storage))
    search.set_search_properties("val/mAP", "max", {"lr": tune.loguniform(0.01, 0.1)})
    for trial_id, last_epoch in (("full", 6), ("cut", 4)):
        search.suggest(trial_id)
        evaluated = {}
        for epoch in range(1, last_epoch + 1):
            if epoch == 1 or epoch % 2 == 0:
                evaluated = {"val/mAP": 0.1 * epoch + (0.05 if trial_id == "cut" else 0), "val/epoch": epoch}
            # as Tune hands results to a searcher: flattened, so the config is `config/...` keys
            result = {**evaluated, "epoch": epoch, "training_iteration": epoch, "config/lr": 0.02}
            if epoch < last_epoch:
                search.on_trial_result(trial_id, result)
        search.on_trial_complete(trial_id, result)
    study = optuna.load_study(study_name="s", storage=storage)
    full, cut = study.trials
    assert study.metric_names == ["val/mAP"]  # optuna-dashboard's objective name, not "Objective 0"
    assert full.state == optuna.trial.TrialState.COMPLETE and cut.state == optuna.trial.TrialState.PRUNED
    assert list(full.intermediate_values) == [1, 2, 4, 6] and list(cut.intermediate_values) == [1, 2, 4]
    assert full.intermediate_values[6] == full.value == 0.1 * 6
    assert cut.intermediate_values[4] == cut.value == 0.1 * 4 + 0.05
    assert full.user_attrs == {"tune_trial_id": "full", "genotype": annotate("full", None, False)["genotype"],
                               "mlflow_run_id": "run-full", "stopped_early": False}
    assert cut.user_attrs["stopped_early"] is True and cut.user_attrs["tune_trial_id"] == "cut"


def test_several_objectives_are_named_in_order(tmp_path):
    from ray import tune

    storage = f"sqlite:///{tmp_path}/optuna.db"
    search = PrunedAwareOptunaSearch(6, seed=0, study_name="m", storage=optuna.storages.RDBStorage(storage),
                                     metric=["val/mAP", "latency/ms"], mode=["max", "min"],
                                     space={"lr": tune.loguniform(0.01, 0.1)})
    search.suggest("a")
    search.on_trial_complete("a", {"val/mAP": 0.5, "latency/ms": 3.0, "val/epoch": 6, "epoch": 6, "config": {}})
    study = optuna.load_study(study_name="m", storage=storage)
    assert study.metric_names == ["val/mAP", "latency/ms"] and study.trials[0].values == [0.5, 3.0]
