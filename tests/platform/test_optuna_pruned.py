"""Trials that early stopping ended are PRUNED in the Optuna study, with their intermediate values, not
COMPLETE with an early value that TPE would take for a finished one."""

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
            search.on_trial_result(trial_id, {"val/mAP": 0.1 * epoch, "epoch": epoch, "training_iteration": epoch})
        search.on_trial_complete(trial_id, {"val/mAP": 0.1 * last_epoch, "epoch": last_epoch,
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
    search.on_trial_result("t", {"val/mAP": 0.1, "epoch": 1, "training_iteration": 1})
    assert fail_running_optuna(storage, "s") == 1  # the driver stopped (Ctrl-C) or was found dead
    assert fail_running_optuna(storage, "missing-study") == 0
    for epoch in (2, 3, 4):  # the restored Tune trial continues
        search.on_trial_result("t", {"val/mAP": 0.1 * epoch, "epoch": epoch, "training_iteration": epoch})
    search.on_trial_complete("t", {"val/mAP": 0.4, "epoch": 4, "training_iteration": 4, "config": {}})
    first, second = optuna.load_study(study_name="s", storage=storage).trials
    assert first.state == optuna.trial.TrialState.FAIL and first.intermediate_values == {1: 0.1}
    assert second.state == optuna.trial.TrialState.COMPLETE and second.value == 0.4
    assert second.params == first.params == {"lr": params["lr"]}
    assert second.user_attrs["continues_trial"] == first.number
