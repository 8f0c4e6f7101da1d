"""Own data in studies: list datasets and several sources named in study files and with --set, checked by the
driver before any trial starts, and a real launch that trains on Market-1501, a list dataset and a loader
written in Python together."""

import pytest
import study_data
from mlflow.tracking import MlflowClient
from study_spec import StudyError, load_study, parse_overrides

from trials.data import synthesize

STUDY = """
description: a study on own data
phases:
  retrain:
    kind: retrain
    config: {dataset: [market1501, "list:mine"], genotype: msmt}
    grid:
      seed: [0, 1]
"""


def test_a_dataset_list_in_a_study_file_becomes_one_flat_name(tmp_path):
    path = tmp_path / "own.yaml"
    path.write_text(STUDY)
    study = load_study(str(path), scale="smoke")
    assert study.phases[0].config["dataset"] == "market1501+list:mine"
    assert study_data.datasets(study) == {"market1501": "source", "list:mine": "source"}
    same = load_study("in_domain", scale="smoke", overrides=parse_overrides(["dataset=market1501+list:mine"]))
    assert {p.config["dataset"] for p in same.phases} == {"market1501+list:mine"}
    flat = load_study("in_domain", scale="smoke", overrides=parse_overrides(["dataset=[market1501, list:mine]"]))
    assert {p.config["dataset"] for p in flat.phases} == {"market1501+list:mine"}
    with pytest.raises(StudyError, match="unknown dataset 'duke'"):
        load_study("in_domain", scale="smoke", overrides=parse_overrides(["dataset=market1501+duke"]))


@pytest.mark.slow
def test_the_driver_names_a_bad_list_row_before_any_trial(launch, tmp_path, run_dir):
    folder = tmp_path / "mine"
    synthesize("list", tmp_path, ids=8, seed=2)
    (tmp_path / "custom").rename(folder)
    lines = (folder / "gallery.csv").read_text().splitlines()
    (folder / "gallery.csv").write_text("\n".join(lines + [lines[1]]) + "\n")  # a path listed twice
    result = launch("--study", "in_domain", "--scale", "smoke", "--data-dir", str(tmp_path), "--run-dir",
                    str(run_dir), "--set", "dataset=list:mine")
    assert result.returncode == 2, (result.stdout, result.stderr)
    message = result.stderr.strip()
    assert message.startswith("error: data: study 'in_domain' reads list:mine") and "\n" not in message
    assert f"{folder / 'gallery.csv'}, line {len(lines) + 1}" in message and "listed twice" in message
    assert not (run_dir / "tune").exists()  # no trial started


def test_sources_of_both_kinds_are_refused_by_the_driver(launch, synthetic_root, run_dir):
    result = launch("--study", "in_domain", "--scale", "smoke", "--data-dir", str(synthetic_root), "--run-dir",
                    str(run_dir), "--set", "dataset=market1501+veri")
    assert result.returncode == 2 and "mixes persons and vehicles" in result.stderr


LOADER = """
import csv, os

def load_mine(data_dir):
    def read(name):
        with open(os.path.join(data_dir, "custom", name)) as handle:
            return [("custom/" + r["path"], r["pid"], r["camid"]) for r in csv.DictReader(handle)]
    return read("train.csv"), read("query.csv"), read("gallery.csv")
"""


@pytest.mark.slow
def test_in_domain_trains_on_market1501_a_list_dataset_and_a_python_loader(launch, tmp_path, run_dir):
    data = tmp_path / "data"
    synthesize("market1501", data, ids=24, seed=0)
    synthesize("list", data, ids=24, seed=5)
    code = tmp_path / "code"
    code.mkdir()
    (code / "own_reid_loader.py").write_text(LOADER)
    sources = f"[market1501, list:{data / 'custom'}, own_reid_loader:load_mine]"
    result = launch("--study", "in_domain", "--scale", "smoke", "--data-dir", str(data), "--run-dir", str(run_dir),
                    "--num-cpus", "2", "--set", f"dataset={sources}",
                    "--set", "retrain.num_samples=1", "--set", "epochs=2", "--set", "eval_interval=1",
                    "--set", "iters_per_epoch=2", "--set", "ids_per_batch=4",
                    "--set", "retrain.early_stopping.grace_period=1", env={"PYTHONPATH": str(code)})
    assert result.returncode == 0, result.stderr[-3000:]
    client = MlflowClient(f"sqlite:///{run_dir}/mlflow.db")
    experiment = client.get_experiment_by_name("in_domain")
    trials = [r for r in client.search_runs([experiment.experiment_id])
              if r.data.tags.get("msinet.role") == "trial"]
    assert len(trials) == 2  # the retrain trial and the final one
    for run in trials:
        assert run.info.status == "FINISHED"
        assert run.data.params["dataset"] == f"market1501+list:{data / 'custom'}+own_reid_loader:load_mine"
        assert run.data.metrics["num_classes"] in (12 + 12 + 12, 36 - round(0.2 * 36))  # final: no hold-out
        for key in ("source/market1501/mAP", "source/custom/mAP", "source/load_mine/mAP", "source/mAP"):
            assert 0.0 < run.data.metrics[key] <= 1.0, key
