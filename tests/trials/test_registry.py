"""The champion of a study in MLflow's model registry, on a real SQLite store with real logged models:
chosen by the validation metric (never the test metric), a final retrain preferred, moved by hand with
`python -m analysis promote`, registered from the logged model itself (which lists the version), described
with what the choice rests on, loaded back as `models:/msinet-<study>@champion` with the checkpoint's
features, and served by `mlflow models serve` as docs/deployment.md says."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from mlflow.tracking import MlflowClient

import spaces
from analysis.registry import register_champion
from trials.deploy import DeployError
from trials.deploy.client import encode
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
    for name, val, test in (("a", 0.8, 0.3), ("b", 0.6, 0.9)):  # intervals 0.70-0.90 and 0.50-0.70: decided
        run_id = client.create_run(experiment_id, run_name=f"retrain/{name}", tags={
            "mlflow.parentRunId": parent, "msinet.role": "trial", "msinet.trial": f"retrain/{name}",
            "msinet.phase": "retrain", "msinet.kind": "retrain", "msinet.group": "tcm", "msinet.launch": "L1",
            "genotype": "g"}).info.run_id
        for key, value in {"val/mAP": val, "val/mAP_ci_low": val - 0.1, "val/mAP_ci_high": val + 0.1,
                           "val/num_valid_queries": 31, "val/num_valid_ids": 16, "source/mAP": test,
                           "source/rank1": test + 0.05, "source/num_valid_queries": 98}.items():
            client.log_metric(run_id, key, value)
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

    # registered from the logged model itself, which lists the version (its page: not "Not registered")
    version = champion(client)
    model_id = client.get_run(runs["a"]).data.tags[MODEL_URI_TAG].rsplit("/", 1)[-1]
    assert version.source == f"models:/{model_id}"
    assert json.loads(client.get_logged_model(model_id).tags["mlflow.modelVersions"]) == [
        {"name": "msinet-reg", "version": version.version}]
    # what the registered model's page shows: what the choice rests on, and the test scores beside it
    for text in (version.description, client.get_registered_model("msinet-reg").description):
        assert "retrain/a by val/mAP 0.8000 (95 % CI 0.700-0.900) on 31 queries of 16 identities" in text
        assert "runner-up retrain/b 0.6000 (95 % CI 0.500-0.700): the intervals are disjoint, decided" in text
        assert "**test** (never used to choose): source/mAP 0.3000, source/rank1 0.3500 (98 queries)" in text

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
    before = champion(client)
    again = subprocess.run([*command, before.run_id], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr  # the champion promoted by hand: nothing changes (README)
    after = champion(client)
    assert (after.version, after.description) == (before.version, before.description)
    assert "promoted by hand" not in after.description  # still what the launch's choice rested on
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
                         "trial": ["x", "y", "z"],
                         "metrics.val/mAP": [0.9, None, 0.5], "metrics.source/mAP": [0.1, 0.2, 0.99],
                         "metrics.val/mAP_ci_low": [0.45, None, 0.3], "metrics.val/mAP_ci_high": [1.0, None, 0.7]})
    row, reason, _ = choose_champion(runs, "val/mAP", "max")
    assert row["run_id"] == "2" and "final" in reason  # no hold-out, so no val/mAP: still the final one
    row, reason, decision = choose_champion(runs[runs["group"] != "final"], "val/mAP", "max")
    assert row["run_id"] == "1" and decision["verdict"] == "undecided"  # 0.45-1.0 overlaps 0.3-0.7
    assert reason.endswith("the intervals overlap, so the choice is undecided")


def test_the_champion_serves_as_documented_and_refuses_raw_pixels(study, smoke_checkpoint, synthetic_root, tmp_path):
    """`mlflow models serve` as docs/deployment.md writes it (the venv's bin first on PATH, no activation),
    features of real images through `python -m trials.deploy.client` equal to `trials.extract`'s, and a batch
    of raw 0-255 pixels answered with HTTP 400 and why."""
    from tests.net import free_port
    from trials.deploy import FeatureExtractor, Preprocessing
    from trials.deploy.client import post

    uri, client, runs = study
    register_champion(uri, "reg", "L1", "val/mAP", "max")  # run a
    port = free_port()
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "MLFLOW_TRACKING_URI": uri}
    log = open(tmp_path / "serve.log", "w")  # noqa: SIM115 - closed below
    server = subprocess.Popen(["mlflow", "models", "serve", "-m", "models:/msinet-reg@champion", "--env-manager",
                               "local", "--host", "127.0.0.1", "--port", str(port)], cwd=tmp_path, env=env,
                              stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        query = synthetic_root / "Market-1501-v15.09.15" / "query"
        preprocessing = Preprocessing(64, 32).write(tmp_path / "preprocessing.json")
        done = subprocess.run([sys.executable, "-m", "trials.deploy.client", str(query), "--url", url,
                               "--preprocessing", str(preprocessing), "--wait", "180", "--batch-size", "16",
                               "--out", str(tmp_path / "served.npz")], cwd=ROOT, capture_output=True, text=True,
                              timeout=300)
        assert done.returncode == 0, done.stderr + (tmp_path / "serve.log").read_text()[-3000:]
        served = np.load(tmp_path / "served.npz")
        extracted = FeatureExtractor(smoke_checkpoint)  # what run a logged as its model
        reference = extracted([str(p) for p in served["paths"]])
        np.testing.assert_allclose(served["features"], reference, rtol=1e-4, atol=1e-4 * np.abs(reference).max())
        assert json.loads(done.stdout.strip().splitlines()[-1])["largest_request_bytes"] < 400_000
        with pytest.raises(DeployError, match=r"HTTP 400\): inputs outside the normalised range \(raw 0-255"):
            post(url, encode(np.full((2, 3, 64, 32), 128.0, dtype=np.float32)))
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # the CLI and the uvicorn it started, both ours
        server.wait(timeout=60)
        log.close()
    deadline = time.monotonic() + 30
    while subprocess.run(["pgrep", "-g", str(server.pid)], capture_output=True).returncode == 0:
        assert time.monotonic() < deadline, "the scoring server outlived its CLI"
        time.sleep(0.5)


def test_among_several_finals_the_one_whose_configuration_scored_best_before():
    import pandas as pd

    from analysis.registry import choose_champion

    runs = pd.DataFrame({"run_id": ["1", "2", "3"], "kind": "retrain", "status": "FINISHED", "group": "final",
                         "end_time": [1, 2, 3], f"tags.{MODEL_URI_TAG}": ["models:/m-1", "models:/m-2", "models:/m-3"],
                         "tags.msinet.selected_on": "val/mAP", "tags.msinet.selected_score": ["0.4", "0.6", "0.5"],
                         "tags.msinet.selected_from": ["retrain/a", "retrain/b", "retrain/c"],
                         "metrics.target/mAP": [0.9, 0.1, 0.2]})  # a test metric never chooses
    row, reason, _ = choose_champion(runs, "val/mAP", "max")
    assert row["run_id"] == "2" and "retrain/b" in reason
    row, _, _ = choose_champion(runs.assign(**{"tags.msinet.selected_on": "val/rank1"}), "val/mAP", "max")
    assert row["run_id"] == "1"  # scored on another metric: the first to finish, as before
