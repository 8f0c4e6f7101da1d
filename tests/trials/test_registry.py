"""The champion of a study in MLflow's model registry, on a real SQLite store with real logged models:
chosen by the validation metric (never the test metric), a final retrain preferred, moved by hand with
`python -m analysis promote`, and loaded back as `models:/msinet-<study>@champion` with the checkpoint's
features."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from mlflow.tracking import MlflowClient

import spaces
from analysis.registry import register_champion
from trials.deploy.mlflow_model import MODEL_URI_TAG, log_checkpoint_model
from trials.tracking import ensure_store

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def study(smoke_checkpoint, tmp_path_factory):
    """Study `reg`, one launch: retrains `a` (better val/mAP, worse test mAP) and `b`, each with a model."""
    uri = f"sqlite:///{tmp_path_factory.mktemp('registry')}/mlflow.db"
    experiment_id = ensure_store(uri, "reg")
    client = MlflowClient(uri)
    parent = client.create_run(experiment_id, run_name="reg-1", tags={
        "msinet.role": "launch", "msinet.study": "reg", "msinet.launch": "L1", "msinet.metric": "val/mAP",
        "msinet.mode": "max"}).info.run_id
    runs = {}
    for name, val, test in (("a", 0.8, 0.3), ("b", 0.6, 0.9)):
        run_id = client.create_run(experiment_id, run_name=f"retrain/{name}", tags={
            "mlflow.parentRunId": parent, "msinet.role": "trial", "msinet.trial": f"retrain/{name}",
            "msinet.phase": "retrain", "msinet.kind": "retrain", "msinet.group": "tcm", "msinet.launch": "L1",
            "genotype": "g"}).info.run_id
        client.log_metric(run_id, "val/mAP", val)
        client.log_metric(run_id, "source/mAP", test)
        client.set_tag(run_id, MODEL_URI_TAG, log_checkpoint_model(uri, run_id, smoke_checkpoint))
        client.set_terminated(run_id, "FINISHED")
        runs[name] = run_id
    client.set_terminated(parent, "FINISHED")
    return uri, client, runs


def champion(client, name="msinet-reg"):
    return client.get_model_version_by_alias(name, "champion")


def test_the_champion_is_the_best_by_validation_and_loads_with_the_checkpoint_features(study, smoke_checkpoint):
    import mlflow
    import mlflow.pytorch

    uri, client, runs = study
    result = register_champion(uri, "reg", "L1", "val/mAP", "max")
    assert result["run_id"] == runs["a"] and "val/mAP" in result["reason"]  # not b, the better test score
    assert champion(client).run_id == runs["a"]
    assert client.get_run(runs["a"]).data.tags["msinet.champion"] == "true"
    # a study optimising a test metric still chooses by validation
    assert register_champion(uri, "reg", "L1", "source/mAP", "max")["run_id"] == runs["a"]
    assert len(client.search_model_versions("name = 'msinet-reg'")) == 1  # registered once per run

    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)
    try:
        loaded = mlflow.pytorch.load_model("models:/msinet-reg@champion")
    finally:
        mlflow.set_tracking_uri(previous)
    reference = spaces.build_from_checkpoint(smoke_checkpoint).eval()
    images = torch.randn(4, 3, 64, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded(images), reference(images))


def test_promote_moves_the_alias_and_the_tag_by_hand(study):
    uri, client, runs = study
    register_champion(uri, "reg", "L1", "val/mAP", "max")
    command = [sys.executable, "-m", "analysis", "promote", "--study", "reg", "--tracking-uri", uri, "--run"]
    moved = subprocess.run([*command, runs["b"]], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert moved.returncode == 0, moved.stderr
    assert "models:/msinet-reg@champion" in moved.stdout
    assert champion(client).run_id == runs["b"]
    assert client.get_run(runs["b"]).data.tags["msinet.champion"] == "true"
    assert "msinet.champion" not in client.get_run(runs["a"]).data.tags

    unknown = subprocess.run([*command, "0" * 32], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert unknown.returncode == 2 and unknown.stderr.startswith("error: ") and "Traceback" not in unknown.stderr


def test_a_final_retrain_is_preferred():
    import pandas as pd

    from analysis.registry import choose_champion

    runs = pd.DataFrame({"run_id": ["1", "2", "3"], "kind": "retrain", "status": "FINISHED",
                         "group": ["tcm", "final", "tcm"], "end_time": [1, 2, 3],
                         f"tags.{MODEL_URI_TAG}": ["models:/m-1", "models:/m-2", "models:/m-3"],
                         "metrics.val/mAP": [0.9, None, 0.5], "metrics.source/mAP": [0.1, 0.2, 0.99]})
    row, reason = choose_champion(runs, "val/mAP", "max")
    assert row["run_id"] == "2" and "final" in reason  # no hold-out, so no val/mAP: still the final one
    row, _ = choose_champion(runs[runs["group"] != "final"], "val/mAP", "max")
    assert row["run_id"] == "1"


def test_among_several_finals_the_one_whose_configuration_scored_best_before():
    import pandas as pd

    from analysis.registry import choose_champion

    runs = pd.DataFrame({"run_id": ["1", "2", "3"], "kind": "retrain", "status": "FINISHED", "group": "final",
                         "end_time": [1, 2, 3], f"tags.{MODEL_URI_TAG}": ["models:/m-1", "models:/m-2", "models:/m-3"],
                         "tags.msinet.selected_on": "val/mAP", "tags.msinet.selected_score": ["0.4", "0.6", "0.5"],
                         "tags.msinet.selected_from": ["retrain/a", "retrain/b", "retrain/c"],
                         "metrics.target/mAP": [0.9, 0.1, 0.2]})  # a test metric never chooses
    row, reason = choose_champion(runs, "val/mAP", "max")
    assert row["run_id"] == "2" and "retrain/b" in reason
    row, _ = choose_champion(runs.assign(**{"tags.msinet.selected_on": "val/rank1"}), "val/mAP", "max")
    assert row["run_id"] == "1"  # scored on another metric: the first to finish, as before
