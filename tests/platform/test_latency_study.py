"""Hardware-aware studies: two objectives (val/mAP and the cost table's latency/ms), Optuna's multi-objective
sampler, Pareto-set hand-over with an optional latency budget, and the accuracy/latency section of the report."""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
OBJECTIVES = [("val/mAP", "max"), ("latency/ms", "min")]


def row(trial, genotype, mAP, ms, phase="search", status="finished"):
    return {"phase": phase, "trial": trial, "status": status, "group": "tcm", "genotype": genotype,
            "val/mAP": mAP, "latency/ms": ms, "config": {"genotype": genotype, "lr": mAP}}


ROWS = [row("a", "g1", 0.50, 40.0), row("b", "g2", 0.40, 35.0), row("c", "g3", 0.30, 38.0),  # c: beaten by b
        row("d", "g1", 0.45, 40.0), row("e", "g4", 0.20, 33.0), row("f", "g5", 0.9, 30.0, status="failed")]


def test_the_pareto_set_is_what_no_other_trial_beats_on_both_objectives():
    from study_select import select_configs, select_genotypes

    spec = {"from": "search", "top_k": 1, "group_by": None, "random": 0, "published": [], "pareto": True,
            "budget": {}}
    genotypes, groups = select_genotypes(spec, ROWS, OBJECTIVES, seed=0)
    assert genotypes == ["g1", "g2", "g4"] and groups == {"g1": "tcm", "g2": "tcm", "g4": "tcm"}
    within = select_genotypes({**spec, "budget": {"latency/ms": 36.0}}, ROWS, OBJECTIVES, seed=0)[0]
    assert within == ["g2", "g4"]  # the most accurate under the budget first
    assert select_genotypes({**spec, "pareto": False}, ROWS, OBJECTIVES, seed=0)[0] == ["g1"]
    finals = select_configs({**spec, "budget": {"latency/ms": 34.0}}, [{**r, "phase": "search"} for r in ROWS],
                            OBJECTIVES)
    assert [row["config"] for row in finals] == [{"genotype": "g4", "lr": 0.20}]
    with pytest.raises(RuntimeError, match="within the budget"):
        select_genotypes({**spec, "budget": {"latency/ms": 10.0}}, ROWS, OBJECTIVES, seed=0)


def test_the_latency_study_declares_two_objectives_and_hands_over_the_front():
    import study_spec

    for scale in ("smoke", "full"):
        study = study_spec.load_study("latency", scale)
        assert study_spec.objectives(study) == OBJECTIVES and (study.metric, study.mode) == OBJECTIVES[0]
        search, retrain, final = study.phases
        assert "latency_weight" in search.space and retrain.genotypes["pareto"] and final.configs["pareto"]
    # a record written before multi-objective studies has one objective
    assert study_spec.objectives(study_spec.Study(**{**study.to_dict(), "objectives": [], "phases": []})) == [
        OBJECTIVES[0]]


@pytest.mark.parametrize(("change", "message"), [
    ({"metric": ["val/mAP", "latency/ms"], "mode": "max"}, "two lists of the same length"),
    ({"metric": ["val/mAP", "source/mAP"], "mode": ["max", "max"]}, "'source/mAP' is not a validation metric"),
    ({"metric": ["val/mAP", "latency/msec"], "mode": ["max", "min"]}, "did you mean 'latency/ms'"),
    ({"metric": "val/mAP", "mode": "max"}, "a Pareto set needs two objectives"),
    ({"phases.retrain.genotypes.budget": {"latency/s": 3}}, "budget.latency/s: not reported"),
])
def test_bad_objectives_and_selections_are_refused_with_the_field(tmp_path, change, message):
    import study_spec

    document = yaml.safe_load((ROOT / "platform" / "studies" / "latency.yaml").read_text())
    for key, value in change.items():
        target = document
        *parents, last = key.split(".")
        for part in parents:
            target = target[part]
        target[last] = value
    path = tmp_path / "bad_latency.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    with pytest.raises(study_spec.StudyError, match=message) as error:
        study_spec.load_study(str(path))
    assert str(path) in str(error.value)


@pytest.mark.slow
def test_dry_run_says_what_is_optimised_and_handed_over(launch, run_dir):
    result = launch("--study", "latency", "--scale", "smoke", "--run-dir", str(run_dir), "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "optimises val/mAP (max) against latency/ms (min)" in result.stdout
    assert "Pareto front of phase search" in result.stdout


@pytest.mark.slow
def test_latency_study_finds_a_pareto_set_in_optuna_and_in_the_report(launch, run_dir):
    import json

    import optuna
    from mlflow.tracking import MlflowClient

    # as the README shows it, with the retrains (and the finals, which inherit them) cut to what the checks need
    result = launch("--study", "latency", "--scale", "smoke", "--run-dir", str(run_dir), "--num-cpus", "2",
                    "--set", "retrain.config.epochs=4", "--set", "retrain.config.eval_interval=2", timeout=1500)
    assert result.returncode == 0, result.stderr[-3000:]
    record = json.loads(next((run_dir / "launches" / "latency").glob("*.json")).read_text())
    search_rows = record["phases"]["search"]["rows"]
    assert len(search_rows) == 3 and {r["latency_weight"] == 0.0 for r in search_rows} == {True, False}

    study = optuna.load_study(study_name=f"latency-{record['launch']}-search",
                              storage=f"sqlite:///{run_dir}/optuna.db")
    assert [d.name for d in study.directions] == ["MAXIMIZE", "MINIMIZE"]
    front = study.best_trials
    assert front and all(len(t.values) == 2 for t in front)
    # the retrain phase trains the distinct genotypes of the search's front, as Optuna holds it
    front_ms = sorted({t.values[1] for t in front})
    handed = record["phases"]["retrain"]["genotypes"]
    by_genotype = {r["genotype"]: r["latency/ms"] for r in search_rows}
    assert sorted({by_genotype[g] for g in handed}) == pytest.approx(front_ms)

    client = MlflowClient(f"sqlite:///{run_dir}/mlflow.db")
    experiment = client.get_experiment_by_name("latency")
    runs = [r for r in client.search_runs([experiment.experiment_id]) if r.data.tags.get("msinet.role") == "trial"]
    retrained = [r for r in runs if r.data.tags["msinet.phase"] in ("retrain", "final")]
    assert retrained and all("latency/ms" in r.data.metrics and "latency/b1_ms_per_image" in r.data.metrics
                             for r in retrained)

    report = subprocess.run([sys.executable, "-m", "analysis", "report", "--study", "latency", "--tracking-uri",
                             f"sqlite:///{run_dir}/mlflow.db"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert report.returncode == 0, report.stderr
    folder = next((run_dir / "reports").iterdir())
    text = (folder / "report.md").read_text()
    section = text.split("## Accuracy vs latency", 1)[1].split("\n## ", 1)[0]
    assert "finished search trials with λ from 0" in section and "on the front of val/mAP" in section
    assert (folder / "latency_front.png").stat().st_size > 0 and (folder / "latency_search.csv").is_file()


def test_a_table_file_given_relative_to_the_launch_folder_reaches_the_trials_absolute(tmp_path, monkeypatch):
    import shutil

    import study_spec

    shutil.copy(ROOT / "spaces" / "latency_tables" / "cpu-256x128-b1.json", tmp_path / "mine.json")
    monkeypatch.chdir(tmp_path)
    study = study_spec.load_study("latency", "smoke", {"search.config.latency_table": "mine.json"})
    assert study.phase("search").config["latency_table"] == str(tmp_path / "mine.json")
    with pytest.raises(study_spec.StudyError, match="latency_table: expected a kept table"):
        study_spec.load_study("latency", "smoke", {"search.config.latency_table": "absent.json"})
