"""A real `mlflow server` over the study store serves what the platform logged, through its REST API, and the
runs-table link the report prints points at it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from analysis.links import runs_table_url
from analysis.report import write_report
from tests.net import free_port, get_json

pytestmark = pytest.mark.slow
STARTUP_SECONDS = 90


def _post(url: str, body: dict) -> dict:
    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


@pytest.fixture(scope="module")
def server(study_store, tmp_path_factory):
    """`mlflow server` on a free port (one worker: the machine has two cores), stopped however the tests end."""
    port = free_port()
    log = open(tmp_path_factory.mktemp("server") / "server.log", "w")  # noqa: SIM115 - closed in the finaliser
    process = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", study_store.uri, "--host", "127.0.0.1",
         "--port", str(port), "--workers", "1"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)  # its own group: uvicorn runs as a child
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                log.flush()
                pytest.fail(f"mlflow server did not come up: {Path(log.name).read_text()[-2000:]}")
            time.sleep(0.5)
        yield url
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        log.close()


def test_the_server_serves_the_studys_runs_metrics_tags_and_artefacts(server, study_store):
    experiment = get_json(f"{server}/api/2.0/mlflow/experiments/get-by-name?experiment_name=nas")["experiment"]
    assert experiment["experiment_id"] == study_store.experiment_id

    children = _post(f"{server}/api/2.0/mlflow/runs/search", {
        "experiment_ids": [study_store.experiment_id], "max_results": 1000,
        "filter": f"tags.`mlflow.parentRunId` = '{study_store.parent_run_id}'"})["runs"]
    assert len(children) == len(study_store.trials)
    for run in children:
        tags = {tag["key"]: tag["value"] for tag in run["data"].get("tags", [])}
        metrics = {metric["key"]: metric["value"] for metric in run["data"].get("metrics", [])}
        trial = study_store.trials[tags["msinet.trial"]]
        assert run["info"]["run_id"] == trial.run_id and run["info"]["status"] == trial.status
        assert tags["mlflow.parentRunId"] == study_store.parent_run_id
        assert tags.get("genotype") == trial.genotype
        assert metrics["val/mAP"] == pytest.approx(trial.final["val/mAP"])
        if "source/mAP" in trial.final:
            assert metrics["source/mAP"] == pytest.approx(trial.final["source/mAP"])

    def artefacts(trial: str) -> set[str]:
        query = urllib.parse.urlencode({"run_id": study_store.trials[trial].run_id})
        return {entry["path"] for entry in get_json(f"{server}/api/2.0/mlflow/artifacts/list?{query}")["files"]}

    assert {"alpha_history.npy", "genotype.json"} <= artefacts("search/a_00000")
    assert {"metrics.json", "genotype.json"} <= artefacts("retrain/b_00000")
    history = get_json(f"{server}/api/2.0/mlflow/metrics/get-history?"
                   + urllib.parse.urlencode({"run_id": study_store.trials["search/a_00000"].run_id,
                                             "metric_key": "val/mAP"}))["metrics"]
    assert sorted(point["step"] for point in history) == [1, 2, 3]


def test_the_report_over_the_server_links_its_runs_table(server, study_store, tmp_path):
    text = write_report(server, "nas", out=tmp_path, log=False).read_text()
    link = runs_table_url(server, study_store.experiment_id)
    assert f"<{link}>" in text
    assert "serve the store first" not in text  # a server needs no `mlflow ui`
    assert "## Leaderboard" in text and "retrain/b_00000" in text
    with urllib.request.urlopen(link.split("#")[0], timeout=30) as response:  # the UI page the link opens
        assert response.status == 200 and b"<html" in response.read(2000).lower()
