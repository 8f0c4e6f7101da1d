"""optuna-dashboard serves a launch's Optuna storage: the command the launch prints, run as printed, answers
its HTTP API with the studies and trials a smoke-like launch leaves (a search and a retrain study, TPE)."""

from __future__ import annotations

import shlex
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest

from analysis.links import dashboard_command
from tests.net import free_port, get_json

pytestmark = pytest.mark.slow
STARTUP_SECONDS = 60
STUDIES = {"smoke-20261201-120000-search": 2, "smoke-20261201-120000-retrain": 3}


@pytest.fixture(scope="module")
def storage(tmp_path_factory) -> str:
    """An `optuna.db` like a smoke launch's: one study per phase, val/mAP maximised, lr searched."""
    uri = f"sqlite:///{tmp_path_factory.mktemp('optuna') / 'optuna.db'}"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    for name, trials in STUDIES.items():
        study = optuna.create_study(storage=uri, study_name=name, direction="maximize",
                                    sampler=optuna.samplers.TPESampler(seed=0))
        study.optimize(lambda trial: 0.5 - abs(trial.suggest_float("lr", 0.01, 0.1, log=True) - 0.05), n_trials=trials)
    return uri


@pytest.fixture(scope="module")
def dashboard(storage, tmp_path_factory):
    """The printed command, on a free port, with the venv's `optuna-dashboard`; stopped however tests end."""
    port = free_port()
    command = shlex.split(dashboard_command(storage, port))
    assert command[0] == "optuna-dashboard"
    command[0] = str(Path(sys.executable).parent / "optuna-dashboard")
    log = open(tmp_path_factory.mktemp("dashboard") / "dashboard.log", "w")  # noqa: SIM115 - closed below
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            try:
                get_json(f"{url}/api/meta")
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    log.flush()
                    pytest.fail(f"optuna-dashboard did not start: {Path(log.name).read_text()[-2000:]}")
                time.sleep(0.5)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def test_the_dashboard_lists_the_launch_studies(dashboard):
    summaries = get_json(f"{dashboard}/api/studies")["study_summaries"]
    assert {s["study_name"] for s in summaries} == set(STUDIES)
    assert all(s["directions"] == ["maximize"] for s in summaries)


def test_the_dashboard_serves_each_study_trials_and_best_value(dashboard, storage):
    summaries = {s["study_name"]: s["study_id"] for s in get_json(f"{dashboard}/api/studies")["study_summaries"]}
    for name, count in STUDIES.items():
        detail = get_json(f"{dashboard}/api/studies/{summaries[name]}")
        assert detail["name"] == name and len(detail["trials"]) == count
        study = optuna.load_study(study_name=name, storage=storage)
        served = {trial["number"]: trial for trial in detail["trials"]}
        for trial in study.trials:
            assert served[trial.number]["values"] == [pytest.approx(trial.value)]
            lr = next(p for p in served[trial.number]["params"] if p["name"] == "lr")
            assert float(lr["param_internal_value"]) == pytest.approx(trial.params["lr"])
        assert detail["best_trials"][0]["number"] == study.best_trial.number
