"""The smoke study end to end on a real local Ray instance and after an interruption (a two-node cluster with
security on: test_study_secure.py).

The end-to-end checks read the test run's shared launch of the main job (`smoke_launch`, tests/conftest.py:
the shipped smoke study as `make run` runs it: Optuna, ASHA, two search trials in parallel, the genotype
hand-over, MLflow runs). The interruption test launches its own, with epochs cut by --set to what its point
needs.
"""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def children(tracking_uri: str) -> tuple[list, list]:
    """(parent runs, child runs) of the smoke experiment."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name("smoke")
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    parents = [r for r in runs if r.data.tags.get("msinet.role") == "launch"]
    return parents, [r for r in runs if r.data.tags.get("msinet.role") == "trial"]


def check_store(run_dir: Path, expect_trials: int) -> list:
    """One parent, one FINISHED child per trial with mAP and a valid genotype; returns the children."""
    import spaces

    parents, trials = children(f"sqlite:///{run_dir}/mlflow.db")
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    parent = parents[0].info.run_id
    assert len(trials) == expect_trials
    assert len({r.data.tags["msinet.trial"] for r in trials}) == expect_trials  # no duplicate runs
    for run in trials:
        assert run.data.tags["mlflow.parentRunId"] == parent
        assert run.info.status == "FINISHED", (run.info.run_name, run.data.tags.get("error"))
        spaces.Genotype.parse(run.data.tags["genotype"])
        assert 0.0 <= run.data.metrics["val/mAP"] <= 1.0
        if run.data.tags["msinet.kind"] == "retrain":
            assert 0.0 < run.data.metrics["source/mAP"] <= 1.0
            assert run.data.params["genotype"] == run.data.tags["genotype"]  # the searched genotype, retrained
    return trials


def overlap(client, runs) -> bool:
    """Did the runs' reporting windows overlap (trials running at the same time)?"""
    windows = []
    for run in runs:
        stamps = [m.timestamp for m in client.get_metric_history(run.info.run_id, "epoch")]
        windows.append((min(stamps), max(stamps)))
    (a0, a1), (b0, b1) = windows[:2]
    return a0 <= b1 and b0 <= a1


def check_deployment(client, uri, trials, retrain, stdout, run_dir, code):
    """Measured latency, datasets and system metrics on the trial runs; the code version on the parent; the
    best retrain by val/mAP registered as msinet-smoke@champion, loading with its checkpoint's features. `code`:
    the folder the launch ran from."""
    import mlflow
    import mlflow.pytorch
    import torch

    import spaces

    for run in retrain:
        assert run.data.metrics["latency/b1_ms_per_image"] > 0 and run.data.metrics["latency/b64_ms_per_image"] > 0
        assert run.data.metrics["latency/b64_images_per_second"] > 0
        assert run.data.tags["msinet.model_uri"].startswith("models:/")
    for run in trials:
        assert [d.dataset.name for d in run.inputs.dataset_inputs] == ["market1501"]
    assert any(k.startswith("system/cpu_utilization_percentage") for r in trials for k in r.data.metrics)
    parent = children(uri)[0][0]
    from study_tracking import code_version_tags

    assert parent.data.tags["msinet.code_digest"] == code_version_tags(code)["msinet.code_digest"]  # no git there

    best = max(retrain, key=lambda r: r.data.metrics["val/mAP"])
    champion = client.get_model_version_by_alias("msinet-smoke", "champion")
    assert champion.run_id == best.info.run_id
    assert client.get_run(best.info.run_id).data.tags["msinet.champion"] == "true"
    assert "champion: models:/msinet-smoke@champion" in stdout
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)
    try:
        loaded = mlflow.pytorch.load_model("models:/msinet-smoke@champion")
    finally:
        mlflow.set_tracking_uri(previous)
    checkpoint = client.download_artifacts(best.info.run_id, "checkpoint/model.pt", str(run_dir))
    images = torch.randn(3, 3, 64, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded(images), spaces.build_from_checkpoint(checkpoint).eval()(images))


def evaluated_epochs(run) -> list[int]:
    """The epochs a trial evaluated on validation: the first, every `eval_interval`-th and its planned last,
    up to the epoch it reached (ASHA may stop it earlier, at an evaluated epoch)."""
    planned, every = int(run.data.params["epochs"]), int(run.data.params["eval_interval"])
    reached = int(run.data.metrics["epoch"])
    return [e for e in range(1, reached + 1) if e == 1 or e % every == 0 or e == planned]


def check_what_users_read(client, uri, trials, stdout, storage):
    """What the MLflow UI, optuna-dashboard and the registry show first (issue 25): values logged only where
    measured, run descriptions, genotypes with their margins, validation size and intervals, the parent's
    summary, named models registered from themselves. Through the APIs the UI reads (the `mlflow.note.content`
    tag, run metrics and params, model version descriptions, the logged model's `mlflow.modelVersions`)."""
    import optuna

    from trials.tracking import global_tracking_uri

    by_name = {r.data.tags["msinet.trial"]: r for r in trials}
    for run in trials:
        kind = run.data.tags["msinet.kind"]
        evaluated = evaluated_epochs(run)
        assert [m.step for m in client.get_metric_history(run.info.run_id, "val/mAP")] == evaluated
        epochs = [m.step for m in client.get_metric_history(run.info.run_id, "epoch")]
        assert epochs == list(range(1, evaluated[-1] + 1))
        metrics, tags = run.data.metrics, run.data.tags
        assert (metrics["val/num_valid_ids"], 25 <= metrics["val/num_valid_queries"] <= 40) == (16, True)
        assert metrics["val/mAP_ci_low"] <= metrics["val/mAP"] <= metrics["val/mAP_ci_high"]
        margins = tags["msinet.genotype_margins"]
        assert margins.split(" (")[0].replace("?", "") == tags["genotype"] and "of 12 slots decided" in margins
        note = tags["mlflow.note.content"]
        status = "stopped early" if tags.get("msinet.stopped_early") == "true" else "finished"
        for text in (f"phase `{tags['msinet.phase']}`", status, margins, "val/mAP", "95 % CI",
                     f"{metrics['val/num_valid_queries']:.0f} queries of 16 identities", "what it is for"):
            assert text in note, (text, note)
        assert ("source/mAP" in note and "never used to choose" in note) == (kind == "retrain")
        if kind == "search":
            assert metrics["alpha/decided_slots"] <= 12 and metrics["alpha/min_margin"] >= 0
    for run in (r for r in trials if r.data.tags["msinet.kind"] == "retrain"):
        searched = [r for r in trials if r.data.tags["msinet.kind"] == "search"
                    and r.data.tags["genotype"] == run.data.tags["genotype"]]
        assert run.data.tags["msinet.genotype_margins"] == searched[0].data.tags["msinet.genotype_margins"]
        model = client.get_logged_model(run.data.tags["msinet.model_uri"].rsplit("/", 1)[-1])
        assert model.name == "retrain-" + run.data.tags["msinet.trial"].split("/")[1] + "-" + \
            run.data.tags["genotype"].replace("/", "|")
        assert {m.key: m.dataset_name for m in model.metrics}["val/mAP"] == "market1501"

    # the parent run: a summary, params, the leaderboard as a table
    parent = children(uri)[0][0]
    champion = client.get_model_version_by_alias("msinet-smoke", "champion")
    chosen = client.get_run(champion.run_id)
    summary = parent.data.metrics
    assert (summary["trials/run"], summary["trials/failed"]) == (4, 0)
    assert summary["champion/source/mAP"] == pytest.approx(chosen.data.metrics["source/mAP"])
    assert summary["champion/val/mAP_ci_low"] == pytest.approx(chosen.data.metrics["val/mAP_ci_low"])
    assert summary["best/retrain/val/mAP"] == pytest.approx(chosen.data.metrics["val/mAP"])
    assert parent.data.params["study"] == "smoke" and parent.data.params["phases.search.kind"] == "search"
    assert "**champion** `models:/msinet-smoke@champion`" in parent.data.tags["mlflow.note.content"]
    with global_tracking_uri(uri):  # MlflowClient.load_table searches runs through MLflow's global URI
        table = client.load_table(parent.info.experiment_id, "leaderboard.json", run_ids=[parent.info.run_id])
    assert len(table) == 4 and {"trial", "genotype", "decision", "val/mAP_ci_low"} <= set(table.columns)

    # the registry: registered from the logged model, which lists it; the description says what it rests on
    model_id = chosen.data.tags["msinet.model_uri"].rsplit("/", 1)[-1]
    assert champion.source == f"models:/{model_id}"
    assert {"name": "msinet-smoke", "version": champion.version} in json.loads(
        client.get_logged_model(model_id).tags["mlflow.modelVersions"])
    description = champion.description
    basis = f"{chosen.data.metrics['val/num_valid_queries']:.0f} queries of 16 identities"
    for text in (basis, "95 % CI", "runner-up", chosen.data.tags["msinet.genotype_margins"],
                 "never used to choose", f"source/mAP {chosen.data.metrics['source/mAP']:.4f}"):
        assert text in description, (text, description)

    # what the launch printed: the hand-over, the leaderboard with intervals, the champion's basis
    assert "phase retrain takes from phase search (chosen by val/mAP, max):" in stdout
    assert "95% CI" in stdout and "16id" in stdout and "of 12 slots decided" in stdout
    champion_lines = stdout.split("champion: ")[-1]
    assert basis in champion_lines and ("undecided" in champion_lines or "decided" in champion_lines)

    # optuna-dashboard: named objectives, intermediate values where evaluated, user attributes
    names = {s.study_name for s in optuna.get_all_study_summaries(storage)}
    search = optuna.load_study(study_name=next(n for n in names if n.endswith("-search")), storage=storage)
    assert search.metric_names == ["val/mAP"]
    for trial in search.trials:
        attrs = trial.user_attrs
        run = by_name[f"search/{attrs['tune_trial_id']}"]
        evaluated, stopped = evaluated_epochs(run), run.data.tags.get("msinet.stopped_early") == "true"
        assert list(trial.intermediate_values) == evaluated  # the last included, also for one ASHA stopped
        assert trial.intermediate_values[evaluated[-1]] == pytest.approx(run.data.metrics["val/mAP"])
        assert trial.value == pytest.approx(run.data.metrics["val/mAP"])  # PRUNED: Optuna takes the last value
        assert trial.state == (optuna.trial.TrialState.PRUNED if stopped else optuna.trial.TrialState.COMPLETE)
        assert attrs["mlflow_run_id"] == run.info.run_id and attrs["stopped_early"] is stopped
        assert attrs["mlflow_run_url"].endswith(f"#/experiments/{run.info.experiment_id}/runs/{run.info.run_id}")
        assert attrs["genotype"] == run.data.tags["msinet.genotype_margins"]


def test_smoke_study_end_to_end_then_the_analysis_report(smoke_launch):
    from mlflow.tracking import MlflowClient

    result, run_dir = smoke_launch.result, smoke_launch.run_dir
    assert result.returncode == 0, result.stderr[-3000:]
    assert "leaderboard of smoke" in result.stdout and "mlflow ui --backend-store-uri" in result.stdout
    assert f"optuna-dashboard sqlite:///{run_dir}/optuna.db --host 127.0.0.1 --port 8080" in result.stdout
    assert "#/experiments/" in result.stdout and "/runs" in result.stdout
    trials = check_store(run_dir, expect_trials=4)
    search = [r for r in trials if r.data.tags["msinet.kind"] == "search"]
    retrain = [r for r in trials if r.data.tags["msinet.kind"] == "retrain"]
    assert len(search) == 2 and len(retrain) == 2
    assert {r.data.tags["genotype"] for r in retrain} <= {r.data.tags["genotype"] for r in search}
    client = MlflowClient(f"sqlite:///{run_dir}/mlflow.db")
    assert overlap(client, search), "the two search trials did not run in parallel"
    for run in search:
        assert {"genotype.json", "alpha_history.npy"} <= {a.path for a in client.list_artifacts(run.info.run_id)}
    for run in retrain:
        names = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert {"genotype.json", "cmc.png", "checkpoint", "metrics.json", "rank_lists.png",
                "activation_maps.png"} <= names
        assert run.data.params["scale"] == "smoke" and "lr" in run.data.tags["msinet.space"]
    check_deployment(client, f"sqlite:///{run_dir}/mlflow.db", trials, retrain, result.stdout, run_dir,
                     smoke_launch.folder)
    check_what_users_read(client, f"sqlite:///{run_dir}/mlflow.db", trials, result.stdout,
                          f"sqlite:///{run_dir}/optuna.db")
    # the Optuna study lives beside the MLflow store, so optuna-dashboard can open it
    import optuna

    storage = f"sqlite:///{run_dir}/optuna.db"
    names = {s.study_name for s in optuna.get_all_study_summaries(storage)}
    search_study = next(name for name in names if name.endswith("-search"))
    # A trial ASHA stopped is PRUNED there, not COMPLETE with its early value.
    states = [t.state for t in optuna.load_study(study_name=search_study, storage=storage).trials]
    stopped = sum(r.data.tags.get("msinet.stopped_early") == "true" for r in search)
    assert states.count(optuna.trial.TrialState.PRUNED) == stopped
    assert states.count(optuna.trial.TrialState.COMPLETE) == len(search) - stopped

    report = subprocess.run([sys.executable, "-m", "analysis", "report", "--study", "smoke", "--tracking-uri",
                             f"sqlite:///{run_dir}/mlflow.db"], cwd=ROOT, capture_output=True, text=True,
                            timeout=300)
    assert report.returncode == 0, report.stderr
    folder = next((run_dir / "reports").iterdir())
    text = (folder / "report.md").read_text()
    for section in ("Leaderboard", "Genotype statistics", "Accuracy vs cost", "CMC", "Decision margins",
                    "Agreement between search trials", "bootstrap 95 % interval",
                    "Ranked lists and activation maps of the top retrains"):
        assert section in text
    assert "the whole genotype is undecided" in text  # a few smoke epochs leave softmax(α) near uniform
    assert "No data: no finished retrain trial logged `rank_lists.png`" not in text
    assert len(list(folder.glob("rank_lists-*.png"))) == 2 and len(list(folder.glob("activation_maps-*.png"))) == 2
    parent = children(f"sqlite:///{run_dir}/mlflow.db")[0][0]
    assert any(a.path == "report" for a in client.list_artifacts(parent.info.run_id))


RESUMED_EPOCHS = 8  # the interrupt comes once both retrain trials have a checkpoint, epochs before their end


def test_interrupted_study_resumes_without_duplicates(run_dir):
    command = [sys.executable, "platform/launch.py", "--study", "smoke", "--run-dir", str(run_dir), "--num-cpus",
               "2", "--set", "search.config.epochs=4", "--set", f"retrain.config.epochs={RESUMED_EPOCHS}"]

    def retraining() -> bool:
        """The launch record says the retrain phase runs, and each of its two trials has a checkpoint."""
        files = list((run_dir / "launches" / "smoke").glob("*.json")) if (run_dir / "launches").exists() else []
        text = files[0].read_text() if files else ""
        state = json.loads(text) if text else None  # a record just claimed is still empty
        if not (state and state["phases"].get("retrain", {}).get("status") == "running"):
            return False
        trial_dirs = [p for p in (run_dir / "tune").glob("*-retrain/*") if p.is_dir()]
        return len(trial_dirs) == 2 and all(any(p.glob("checkpoint_*")) for p in trial_dirs)

    driver = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and driver.poll() is None and not retraining():
            time.sleep(0.5)
        assert driver.poll() is None and retraining(), "the retrain phase never checkpointed"
        driver.send_signal(signal.SIGINT)
        out, err = driver.communicate(timeout=120)
    finally:
        if driver.poll() is None:
            driver.kill()
    assert driver.returncode == 130, err[-3000:]
    assert "--resume" in err
    parents, trials = children(f"sqlite:///{run_dir}/mlflow.db")
    assert parents[0].info.status == "KILLED"
    assert trials and not [r.info.run_name for r in trials if r.info.status == "RUNNING"]  # no stale RUNNING
    assert [r for r in trials if r.data.tags["msinet.kind"] == "retrain" and r.info.status != "FINISHED"], \
        "the interrupt came after the retrain trials had finished: nothing was resumed"
    import optuna

    storage = f"sqlite:///{run_dir}/optuna.db"
    for summary in optuna.get_all_study_summaries(storage):
        states = [t.state for t in optuna.load_study(study_name=summary.study_name, storage=storage).trials]
        assert optuna.trial.TrialState.RUNNING not in states, (summary.study_name, states)

    resumed = subprocess.run([*command[:6], "--resume", "--num-cpus", "2"], cwd=ROOT, capture_output=True,
                             text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "phase search: done in an earlier run" in resumed.stderr
    trials = check_store(run_dir, expect_trials=4)
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{run_dir}/mlflow.db")
    for run in trials:
        if run.data.tags["msinet.kind"] == "retrain":
            assert run.data.metrics["epoch"] == RESUMED_EPOCHS
            steps = [m.step for m in client.get_metric_history(run.info.run_id, "epoch")]
            assert sorted(steps) == list(range(1, RESUMED_EPOCHS + 1)), steps  # repeated after the resume: once
    tune_dirs = [p for p in (run_dir / "tune").iterdir() if p.name.endswith("-retrain")]
    assert len(tune_dirs) == 1 and len([p for p in tune_dirs[0].iterdir() if p.is_dir()]) == 2


# The two-node `ray start` cluster (token on, with an MLflow server with accounts): test_study_secure.py.
