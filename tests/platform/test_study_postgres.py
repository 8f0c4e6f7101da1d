"""The smoke study with MLflow's store and Optuna's in PostgreSQL (`--tracking-uri postgresql://...`), on the
session's own PostgreSQL 15 cluster (tests/conftest.py): the driver is killed (SIGKILL) during the retrain
phase, `--resume` finishes the launch with no run or epoch twice, and `analysis report` reads it back.

The URI holds no password: libpq reads it from the file PGPASSFILE names (~/.pgpass on a real machine).
Epochs and trials are cut with --set to what the point needs."""

import subprocess
import sys
from pathlib import Path

import pytest

from tests.servers import create_database

ROOT = Path(__file__).resolve().parents[2]
EPOCHS = 12
SMALL = ["--set", "search.num_samples=1", "--set", "search.config.epochs=4", "--set", "retrain.num_samples=1",
         "--set", f"retrain.config.epochs={EPOCHS}", "--set", "retrain.config.eval_interval=4"]
pytestmark = pytest.mark.slow


def test_password_in_a_database_uri_is_refused_before_anything(launch, run_dir):
    result = launch("--study", "smoke", "--run-dir", str(run_dir), "--tracking-uri",
                    "postgresql://msinet:s3cret-pw@127.0.0.1:5432/mlflow", "--dry-run")
    assert result.returncode == 2 and result.stderr.startswith("error: --tracking-uri postgresql://msinet:***@")
    assert "s3cret-pw" not in result.stderr and "~/.pgpass" in result.stderr


def test_an_unreachable_database_is_one_error(launch, run_dir, postgres):
    uri = f"postgresql://msinet@{postgres.address}/no_such_database"
    result = launch("--study", "smoke", "--run-dir", str(run_dir), "--tracking-uri", uri, env=postgres.env)
    assert result.returncode == 2 and result.stderr.startswith(f"error: --tracking-uri {uri}: cannot connect")
    assert "Traceback" not in result.stderr and not (run_dir / "launches").exists()


def test_smoke_study_on_postgresql_resumes_after_sigkill_and_reports(postgres, run_dir, monkeypatch, killed_launch):
    import optuna
    from mlflow.tracking import MlflowClient

    monkeypatch.setenv("PGPASSFILE", postgres.env["PGPASSFILE"])
    uri = create_database(postgres, "smoke_direct")
    client = MlflowClient(uri)
    args = ["--study", "smoke", "--run-dir", str(run_dir), "--num-cpus", "2", "--tracking-uri", uri]

    def retraining() -> bool:
        """A few retrain epochs logged (so checkpoints exist), the last ones not yet."""
        experiment = client.get_experiment_by_name("smoke") if (run_dir / "launches").exists() else None
        runs = client.search_runs([experiment.experiment_id], "tags.`msinet.kind` = 'retrain'") if experiment else []
        return any(3 <= r.data.metrics.get("epoch", 0) < EPOCHS - 3 for r in runs)

    killed_launch([*args, *SMALL], postgres.env, retraining)
    experiment = client.get_experiment_by_name("smoke")
    assert experiment.artifact_location == (run_dir / "artifacts" / "smoke").as_uri()  # not ./mlruns
    parent = client.search_runs([experiment.experiment_id], "tags.`msinet.role` = 'launch'")[0]
    assert parent.info.status == "RUNNING"  # a killed driver records nothing

    resumed = subprocess.run([sys.executable, "platform/launch.py", *args[:4], "--resume", "--num-cpus", "2"], cwd=ROOT,
                             capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "phase search: done in an earlier run" in resumed.stderr
    runs = client.search_runs([experiment.experiment_id], max_results=100)
    parents = [r for r in runs if r.data.tags.get("msinet.role") == "launch"]
    trials = [r for r in runs if r.data.tags.get("msinet.role") == "trial"]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert len(trials) == 2 and len({r.data.tags["msinet.trial"] for r in trials}) == 2  # no run twice
    assert {r.info.status for r in trials} == {"FINISHED"}
    retrain = next(r for r in trials if r.data.tags["msinet.kind"] == "retrain")
    steps = [m.step for m in client.get_metric_history(retrain.info.run_id, "epoch")]
    assert sorted(steps) == list(range(1, EPOCHS + 1)), steps  # epochs repeated after the resume: logged once
    assert 0 < retrain.data.metrics["source/mAP"] <= 1
    # Optuna's studies in the same database, in a schema of their own; none left RUNNING by the killed driver
    storage = f"{uri}?options=-csearch_path%3Doptuna"
    summaries = optuna.get_all_study_summaries(storage)
    assert {s.study_name.rsplit("-", 1)[1] for s in summaries} == {"search", "retrain"}
    for summary in summaries:
        states = {t.state for t in optuna.load_study(study_name=summary.study_name, storage=storage).trials}
        assert optuna.trial.TrialState.RUNNING not in states and optuna.trial.TrialState.COMPLETE in states

    out = run_dir / "report"
    report = subprocess.run([sys.executable, "-m", "analysis", "report", "--study", "smoke", "--tracking-uri", uri,
                             "--out", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert report.returncode == 0, report.stderr[-3000:]
    assert "Leaderboard" in (out / "report.md").read_text()
    assert any(a.path == "report" for a in client.list_artifacts(parents[0].info.run_id))
