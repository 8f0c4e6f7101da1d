"""Failures are classified: bad data, a bad configuration, divergence and user code end the trial at once,
never retried; Tune's retries are left for what may not repeat (a lost worker, an error not known to repeat).
The rule runs in a real Tune experiment on a local Ray instance."""

from pathlib import Path

import pytest
import study_retries

from trials.config import ConfigError
from trials.dataset_names import DatasetError, LoaderError
from trials.runtime.failures import NonFiniteLossError, TrialFailed, failure_kind
from trials.text_files import TextFileError


def test_failures_that_repeat_are_named_by_kind_and_the_rest_left_to_tune():
    assert failure_kind(DatasetError("train.csv, line 3: ...")) == "bad data"
    assert failure_kind(TextFileError("table.json, line 1: ...")) == "bad data"
    assert failure_kind(LoaderError("dataset 'm:f': its loader m.f raised KeyError")) == "user code"
    assert failure_kind(ConfigError("latency_table: ...")) == "bad configuration"
    assert failure_kind(NonFiniteLossError("loss 'ce' is nan at epoch 1")) == "divergence"
    assert failure_kind(TrialFailed("divergence", "loss 'ce' is nan")) == "divergence"
    for transient in (RuntimeError("CUDA out of memory"), OSError("connection reset"), KeyError("x"), None):
        assert failure_kind(transient) is None
    import pickle

    again = pickle.loads(pickle.dumps(TrialFailed("bad data", "x.csv, line 2: ...")))
    assert (again.kind, again.message, str(again)) == ("bad data", "x.csv, line 2: ...", "bad data: x.csv, line 2: ...")


def attempt(config):
    """Counts its attempts in a file, then fails as the config says."""
    from trials.runtime.failures import TrialFailed

    log = Path(config["log"])
    log.write_text(log.read_text() + "x" if log.exists() else "x")
    if config["fails"] == "repeats":
        raise TrialFailed("divergence", "loss 'ce' is nan at epoch 1, iteration 1")
    raise RuntimeError("the tracking server did not answer")


@pytest.mark.slow
def test_tune_retries_only_what_may_not_repeat(tmp_path, local_ray):
    from ray import tune

    study_retries.install()
    logs = {kind: tmp_path / f"{kind}.log" for kind in ("repeats", "transient")}
    tuner = tune.Tuner(
        tune.with_resources(attempt, {"cpu": 1}),
        param_space={"fails": tune.grid_search(list(logs)), "log": tune.sample_from(
            lambda spec: str(tmp_path / f"{spec.config.fails}.log"))},
        run_config=tune.RunConfig(name="retries", storage_path=str(tmp_path / "tune"), verbose=0,
                                  failure_config=tune.FailureConfig(max_failures=2)))
    results = {r.config["fails"]: r for r in tuner.fit()}
    assert logs["repeats"].read_text() == "x"  # ended at once: one attempt
    assert logs["transient"].read_text() == "xxx"  # the first attempt and max_failures retries
    assert failure_kind(results["repeats"].error) == "divergence"
    assert failure_kind(results["transient"].error) is None
