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


def watched_trial(config, context):
    """The study's trial function, then what outlived it in its process: the system metrics threads left
    running and the process id (with reuse_actors the next trial runs in the same process)."""
    import threading

    from trials.tune_entry import run_trial

    out, seed = Path(config.pop("out")), config["seed"]
    try:
        run_trial(config, context)
    finally:
        alive = sum(t.name == "SystemMetricsMonitor" and t.is_alive() for t in threading.enumerate())
        with open(out, "a") as f:
            f.write(f"{seed} {os.getpid()} {alive}\n")


def test_a_stopped_trial_leaves_no_monitor_running_for_the_next_trial_in_its_process(synthetic_root, tmp_path,
                                                                                      local_ray):
    """Tune stops each trial after its first epoch (a SystemExit out of the report, as ASHA's stop); the next
    runs in the same process (reuse_actors, as in every study phase), and no trial leaves MLflow's system
    metrics thread logging into its finished run. (The last trial's process may be ended before it writes:
    Tune has no trial left to hand it; the first two always write.)"""
    from mlflow.tracking import MlflowClient
    from ray import tune

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    experiment = client.create_experiment("reuse")
    parent = client.create_run(experiment).info.run_id
    context = {"kind": "retrain", "phase": "retrain", "launch": "test", "tracking_uri": uri,
               "experiment_id": experiment, "parent_run_id": parent}
    config = {"scale": "smoke", "dataset": "market1501", "data_dir": str(synthetic_root), "epochs": 3,
              "eval_interval": 3, "out": str(tmp_path / "threads.txt"), "seed": tune.grid_search([0, 1, 2])}
    tuner = tune.Tuner(
        tune.with_resources(tune.with_parameters(watched_trial, context=context), {"cpu": 1}), param_space=config,
        tune_config=tune.TuneConfig(max_concurrent_trials=1, reuse_actors=True),
        run_config=tune.RunConfig(name="reuse", storage_path=str(tmp_path / "results"), stop={"epoch": 1},
                                  verbose=0))
    results = tuner.fit()
    assert [r.error for r in results] == [None] * 3 and [r.metrics["epoch"] for r in results] == [1] * 3
    lines = sorted(line.split() for line in (tmp_path / "threads.txt").read_text().splitlines())
    assert [seed for seed, _, _ in lines][:2] == ["0", "1"], lines
    assert len({pid for _, pid, _ in lines}) == 1, f"a trial did not reuse the process: {lines}"
    assert {alive for _, _, alive in lines} == {"0"}, f"monitors left running after a trial: {lines}"
