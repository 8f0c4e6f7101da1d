"""The trials run under a real Ray Tune unchanged, and a trial that dies resumes from its checkpoint."""

import os
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def flaky_retrain(config):
    """The retrain trainable, except that its first attempt dies right after its first report."""
    from trials.retrain import run_retrain
    from trials.runtime.session import TuneSession

    marker = Path(config.pop("marker"))

    class DiesOnce(TuneSession):
        def restore(self):
            restored = super().restore()
            if restored is not None:
                marker.with_suffix(".restored").write_text("restored")
            return restored

        def report(self, metrics, checkpoint_dir=None):
            super().report(metrics, checkpoint_dir)
            if not marker.exists():
                marker.write_text("died")
                raise RuntimeError("simulated worker failure")

    run_retrain(config, DiesOnce())


def test_retrain_trainable_resumes_after_a_failure_under_tune(synthetic_root, tmp_path, local_ray):
    from ray import tune

    config = {"scale": "smoke", "dataset": "market1501", "data_dir": str(synthetic_root), "epochs": 3,
              "eval_interval": 1, "marker": str(tmp_path / "marker")}
    tuner = tune.Tuner(
        tune.with_resources(flaky_retrain, {"cpu": 1}),
        param_space=config,
        run_config=tune.RunConfig(name="resume", storage_path=str(tmp_path / "results"),
                                  failure_config=tune.FailureConfig(max_failures=1), verbose=0),
    )
    result = tuner.fit()[0]
    assert result.error is None
    assert (tmp_path / "marker").exists(), "the first attempt did not die"
    assert result.metrics["epoch"] == 3
    assert (tmp_path / "marker.restored").exists(), "the second attempt did not start from the checkpoint"
    # Resumed at epoch 2, not restarted from scratch. (Tune may or may not keep the result the dying attempt
    # reported just before it raised, so epoch 1 is there at most once.)
    epochs = list(result.metrics_dataframe["epoch"])
    assert epochs[-2:] == [2, 3] and epochs == sorted(set(epochs)), epochs
    assert {"val/mAP", "source/mAP", "genotype", "params"} <= set(result.metrics)
    # one of the node's two CPUs: its latency was measured beside whatever else the node ran, and says so
    assert result.metrics["latency/shared"] == "yes: 1 of the node's 2 CPUs (trials beside it)"
    with result.checkpoint.as_directory() as d:
        assert {"state.pt", "model.pt", "genotype.json"} <= set(os.listdir(d))
