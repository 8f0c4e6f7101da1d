"""A launch whose Tune state lives in S3 (`--storage-path s3://BUCKET/tune`) and whose MLflow artefacts go to
the same object store through the study's MLflow server (`--artifacts-destination s3://BUCKET/mlflow`, runs in
PostgreSQL), as on a `ray up cluster.yaml` cluster: against the session's moto S3 server and PostgreSQL cluster
on 127.0.0.1 (tests/conftest.py). Endpoint and keys reach every client the standard way, the AWS variables
(AWS_ENDPOINT_URL included); the MLflow login is in HOME/.mlflow/credentials, nothing in the launch's
environment. The driver is killed (SIGKILL) during the retrain phase and `--resume` continues it from S3 with no
run or epoch twice; then the champion, whose files are in S3, is evaluated and exported straight from MLflow."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.servers import create_database, keys, make_bucket, start_mlflow

ROOT = Path(__file__).resolve().parents[2]
EPOCHS = 12
SMALL = ["--set", "search.num_samples=1", "--set", "search.config.epochs=4", "--set", "retrain.num_samples=1",
         "--set", f"retrain.config.epochs={EPOCHS}", "--set", "retrain.config.eval_interval=4"]
BUCKET = "msinet-study"
pytestmark = pytest.mark.slow


@pytest.fixture
def s3_study(tmp_path, s3_server, postgres, monkeypatch):
    """A bucket, a home with the MLflow login, and the MLflow server (runs in PostgreSQL, artefacts in S3)."""
    s3 = make_bucket(s3_server, BUCKET)
    home = tmp_path / "home"
    env = {"HOME": str(home), **s3_server.env}
    for name in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN",
                 "MLFLOW_TRACKING_URI"):
        monkeypatch.delenv(name, raising=False)
    server = start_mlflow(create_database(postgres, "mlflow_s3"), f"s3://{BUCKET}/mlflow",
                          {**os.environ, **env, **postgres.env})
    monkeypatch.setenv("HOME", str(home))  # this process's MLflow client logs in with the same file
    try:
        yield {"s3": s3, "env": env, "uri": server.address, "run_dir": tmp_path / "runs", "server": server}
    finally:
        server.stop()


def test_launch_on_s3_resumes_after_sigkill_and_serves_the_champion(s3_study, killed_launch, synthetic_root):
    from mlflow.tracking import MlflowClient

    s3, env, uri, run_dir = s3_study["s3"], s3_study["env"], s3_study["uri"], s3_study["run_dir"]
    client = MlflowClient(uri)
    args = ["--study", "smoke", "--run-dir", str(run_dir), "--num-cpus", "2", "--tracking-uri", uri,
            "--storage-path", f"s3://{BUCKET}/tune"]

    def retraining() -> bool:
        experiment = client.get_experiment_by_name("smoke") if (run_dir / "launches").exists() else None
        runs = client.search_runs([experiment.experiment_id], "tags.`msinet.kind` = 'retrain'") if experiment else []
        return any(3 <= r.data.metrics.get("epoch", 0) < EPOCHS - 3 for r in runs)

    killed_launch([*args, *SMALL], env, retraining)
    assert any("/checkpoint_" in key for key in keys(s3, BUCKET, "tune/"))  # checkpoints from the trials, in S3
    resumed = subprocess.run([sys.executable, "platform/launch.py", *args[:4], "--resume", "--num-cpus", "2"],
                             cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "phase search: done in an earlier run" in resumed.stderr
    assert f"continuing s3://{BUCKET}/tune/smoke-" in resumed.stderr  # the phase was restored from S3

    experiment = client.get_experiment_by_name("smoke")
    runs = client.search_runs([experiment.experiment_id], max_results=100)
    trials = [r for r in runs if r.data.tags.get("msinet.role") == "trial"]
    assert len(trials) == 2 and len({r.data.tags["msinet.trial"] for r in trials}) == 2  # no run twice
    assert {r.info.status for r in runs} == {"FINISHED"}
    retrain = next(r for r in trials if r.data.tags["msinet.kind"] == "retrain")
    steps = [m.step for m in client.get_metric_history(retrain.info.run_id, "epoch")]
    assert sorted(steps) == list(range(1, EPOCHS + 1)), steps
    # Tune's state is in S3 only; the launch record (and its lock) stay in the driver's run folder, on purpose
    assert not (run_dir / "tune").exists() and len(list((run_dir / "launches" / "smoke").glob("*.json"))) == 1
    objects = keys(s3, BUCKET)
    assert any(k.startswith("tune/smoke-") and "experiment_state" in k for k in objects)
    stored = [k for k in objects if k.startswith("mlflow/")]  # artefacts: uploaded through the server to S3
    for name in ("checkpoint/model.pt", "genotype.json", "cmc.png", "metrics.json", "plan.json", "MLmodel"):
        assert any(k.endswith(name) for k in stored), name
    assert client.get_model_version_by_alias("msinet-smoke", "champion").run_id == retrain.info.run_id

    champion = "models:/msinet-smoke@champion"
    scored = subprocess.run([sys.executable, "-m", "trials.evaluate", "--weights", champion, "--tracking-uri", uri,
                             "--dataset", "market1501", "--data-dir", str(synthetic_root), "--device", "cpu",
                             "--workers", "0"], cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True,
                            timeout=300)
    assert scored.returncode == 0, scored.stderr[-3000:]
    result = json.loads(scored.stdout.splitlines()[-1])
    import spaces

    assert result["weights"] == champion
    assert spaces.Genotype.parse(result["genotype"]) == spaces.Genotype.parse(retrain.data.tags["genotype"])
    assert 0 < result["source/mAP"] <= 1
    out = run_dir / "export"
    exported = subprocess.run([sys.executable, "-m", "trials.export", "--weights", champion, "--tracking-uri", uri,
                               "--format", "torchscript", "--out", str(out), "--no-parity"], cwd=ROOT,
                              env={**os.environ, **env}, capture_output=True, text=True, timeout=300)
    assert exported.returncode == 0, exported.stderr[-3000:]  # (the parity check itself: tests/trials/test_export.py)
    assert json.loads(exported.stdout.splitlines()[-1])["weights"] == champion
    assert (out / "model.torchscript.pt").is_file() and (out / "preprocessing.json").is_file()
