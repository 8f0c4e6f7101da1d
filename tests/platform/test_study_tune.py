"""What a phase's results mean: a trial counts as stopped early against the epochs it was planned to run."""

from study_tune import planned_epochs, stopped_early


def test_planned_epochs_come_from_the_recipe_when_the_study_does_not_set_them():
    assert planned_epochs("retrain", {"scale": "smoke"}) == 30  # the smoke preset
    assert planned_epochs("retrain", {"scale": "full"}) == 350
    assert planned_epochs("search", {"scale": "smoke", "epochs": 6}) == 6


def test_a_trial_ended_before_its_planned_epochs_was_stopped_early():
    assert stopped_early("retrain", {"scale": "smoke"}, {"epoch": 15})
    assert not stopped_early("retrain", {"scale": "smoke"}, {"epoch": 30})
    assert not stopped_early("search", {"scale": "smoke", "epochs": 6}, {"epoch": 6})
