"""The final, paper-comparable step: the best configuration of a retrain phase by its validation metric,
retrained on every training id (no hold-out) and tested once, tagged `final` in MLflow."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]

STUDY = {
    "description": "a retrain phase tuned on held-out ids, then its best configuration on every id",
    "default_scale": "smoke",
    "synthetic": True,
    "phases": {
        "retrain": {"kind": "retrain", "num_samples": 2, "max_concurrent": 2, "resources": {"cpu": 1, "gpu": 0},
                    "config": {"dataset": "market1501", "genotype": "msmt", "epochs": 3, "eval_interval": 3},
                    "space": {"lr": {"loguniform": [0.02, 0.06]}}},
        "final": {"kind": "retrain", "configs": {"from": "retrain", "top_k": 1},
                  "resources": {"cpu": 1, "gpu": 0}},
    },
}


@pytest.fixture
def study_file(tmp_path):
    path = tmp_path / "tiny_final.yaml"
    path.write_text(yaml.safe_dump(STUDY, sort_keys=False))
    return path


def test_shipped_selecting_studies_end_with_a_final_phase():
    import study_spec

    for name in ("nas", "in_domain", "cross_domain"):
        for scale in ("full", "smoke"):
            study = study_spec.load_study(name, scale)
            final = study.phases[-1]
            assert final.configs is not None and final.config["val_fraction"] == 0.0, name
            assert final.early_stopping is None and not final.space


def test_a_final_keeps_every_side_of_the_comparison_its_study_makes():
    """A final fed by a phase that compares grid values or genotype origins retrains the best of each side."""
    import study_spec

    checked = set()
    for name in study_spec.available():
        for scale in ("full", "smoke"):
            study = study_spec.load_study(name, scale)
            for final in (p for p in study.phases if p.configs and not p.configs["pareto"]):
                source = study.phase(final.configs["from"])
                spec = source.genotypes or {}
                sides = [*source.grid, *(["group"] if spec.get("published") or spec.get("random") else [])]
                if sides:
                    assert final.configs["group_by"] in sides, (name, scale)
                    checked.add(name)
    assert checked == {"cross_domain", "nas"}
    retrain = study_spec.load_study("cross_domain", "full").phase("retrain")
    assert retrain.early_stopping is None  # ASHA on source val/mAP would judge SAM by what it is not for


def _row(trial, mAP, sam_mode, group="published", genotype="msmt", status="finished"):
    return {"phase": "retrain", "trial": trial, "status": status, "group": group, "genotype": genotype,
            "val/mAP": mAP, "config": {"genotype": genotype, "sam_mode": sam_mode, "lr": mAP}}


def test_grouped_selection_takes_the_best_finished_configuration_of_each_side():
    from study_select import final_entries, select_configs, uncovered_groups

    rows = [_row("a", 0.50, "none"), _row("b", 0.40, "pos"), _row("c", 0.45, "pos"), _row("d", 0.60, "neg"),
            _row("e", 0.70, "pos_neg", status="stopped early"), _row("f", 0.30, "pos_neg", status="failed")]
    spec = {"from": "retrain", "top_k": 1, "group_by": "sam_mode", "pareto": False, "budget": {}}
    chosen = select_configs(spec, rows, [("val/mAP", "max")])
    assert [(r["config"]["sam_mode"], r["trial"]) for r in chosen] == [("neg", "d"), ("none", "a"), ("pos", "c")]
    assert uncovered_groups(spec, rows, chosen) == ["pos_neg"]  # no trial of it ran all its epochs
    assert [r["trial"] for r in select_configs({**spec, "group_by": None}, rows, [("val/mAP", "max")])] == ["d"]
    entries = final_entries(spec, chosen, "val/mAP", {"lr": 0.1, "val_fraction": 0.0})
    assert entries[0] == {"match": {"genotype": "msmt", "sam_mode": "neg"}, "group_by": "sam_mode", "side": "neg",
                          "trial": "retrain/d", "metric": "val/mAP", "score": 0.60}

    origins = [_row("g", 0.5, "none", "tcm", "g1"), _row("h", 0.6, "none", "tcm", "g2"),
               _row("i", 0.4, "none", "classification", "g3"), _row("j", 0.3, "none", "random", "g4"),
               _row("k", 0.55, "none")]
    chosen = select_configs({**spec, "group_by": "group"}, origins, [("val/mAP", "max")])
    assert [(r["config"]["genotype"], r["group"]) for r in chosen] == [
        ("g2", "tcm"), ("msmt", "published"), ("g3", "classification"), ("g4", "random")]


def test_a_final_trial_finds_its_lineage_and_side():
    from trials.tune_entry import final_tags

    entries = [{"match": {"genotype": "msmt", "sam_mode": s, "lr": lr}, "group_by": "sam_mode", "side": s,
                "trial": f"retrain/{s}", "metric": "val/mAP", "score": lr} for s, lr in (("pos", 0.05), ("neg", 0.07))]
    config = {"genotype": "msmt", "sam_mode": "neg", "lr": 0.07, "val_fraction": 0.0, "data_dir": "/d"}
    assert final_tags(config, {"finals": entries}) == {
        "msinet.selected_from": "retrain/neg", "msinet.selected_on": "val/mAP", "msinet.selected_score": "0.07",
        "msinet.final_group_by": "sam_mode", "msinet.final_group": "neg"}
    assert final_tags({**config, "lr": 0.06}, {"finals": entries}) == {}  # not a chosen configuration
    assert final_tags(config, {}) == {}  # not a final


def test_group_by_names_a_config_key_or_group(tmp_path):
    import study_spec

    doc = json.loads(json.dumps(STUDY))
    doc["phases"]["final"]["configs"]["group_by"] = "sam_mod"
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    with pytest.raises(study_spec.StudyError, match="did you mean 'sam_mode'"):
        study_spec.load_study(str(path))


def test_a_final_phase_with_a_hold_out_or_a_search_space_is_refused(tmp_path):
    import study_spec

    for change, message in ((("config", {"val_fraction": 0.1}), "val_fraction"),
                            (("space", {"lr": {"uniform": [0.01, 0.1]}}), "space"),
                            (("configs", {"from": "nowhere"}), "earlier retrain phase")):
        doc = json.loads(json.dumps(STUDY))
        doc["phases"]["final"][change[0]] = change[1]
        path = tmp_path / "bad.yaml"
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
        with pytest.raises(study_spec.StudyError, match=message):
            study_spec.load_study(str(path))


@pytest.mark.slow
def test_dry_run_shows_the_final_step(launch, study_file, run_dir):
    result = launch("--study", str(study_file), "--run-dir", str(run_dir), "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "phase final [retrain]: FINAL" in result.stdout and "no hold-out" in result.stdout


@pytest.mark.slow
def test_cross_domain_smoke_ends_with_one_final_per_sam_mode_and_a_report_comparing_them(launch, run_dir):
    """The shipped cross_domain study at smoke scale (epochs cut for the test's budget; the finals inherit
    them): one retrain per SAM mode, then the best of each mode retrained on every training id."""
    from mlflow.tracking import MlflowClient

    result = launch("--study", "cross_domain", "--scale", "smoke", "--synthetic", "--run-dir", str(run_dir),
                    "--num-cpus", "2", "--set", "retrain.config.epochs=3", "--set", "retrain.config.eval_interval=3")
    assert result.returncode == 0, result.stderr[-3000:]
    uri = f"sqlite:///{run_dir}/mlflow.db"
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("cross_domain")
    runs = [r for r in client.search_runs([experiment.experiment_id]) if r.data.tags.get("msinet.role") == "trial"]
    tuned = {r.data.tags["msinet.trial"]: r for r in runs if r.data.tags["msinet.phase"] == "retrain"}
    final = [r for r in runs if r.data.tags["msinet.phase"] == "final"]
    modes = ["none", "pos", "neg", "pos_neg"]
    assert sorted(r.data.params["sam_mode"] for r in tuned.values()) == sorted(modes)
    assert sorted(r.data.tags["msinet.final_group"] for r in final) == sorted(modes)  # one final per SAM mode
    for run in final:
        source = tuned[run.data.tags["msinet.selected_from"]]
        assert run.info.status == "FINISHED" and run.data.tags["msinet.group"] == "final"
        assert run.data.tags["msinet.final_group_by"] == "sam_mode"
        assert run.data.params["sam_mode"] == run.data.tags["msinet.final_group"] == source.data.params["sam_mode"]
        for key in ("lr", "sam_ratio", "epochs"):  # the chosen configuration, as it was
            assert run.data.params[key] == source.data.params[key], key
        assert float(run.data.tags["msinet.selected_score"]) == pytest.approx(source.data.metrics["val/mAP"])
        assert float(run.data.params["val_fraction"]) == 0.0
        assert not any(k.startswith("val/") for k in run.data.metrics)  # no hold-out: nothing to select on
        assert 0 < run.data.metrics["target/mAP"] <= 1 and 0 < run.data.metrics["source/mAP"] <= 1
        assert int(run.data.metrics["num_classes"]) > int(source.data.metrics["num_classes"])  # every training id
    record = json.loads(next((run_dir / "launches" / "cross_domain").glob("*.json")).read_text())
    assert len(record["phases"]["final"]["configs"]) == 4
    champion = client.get_model_version_by_alias("msinet-cross_domain", "champion")
    best = max(final, key=lambda r: float(r.data.tags["msinet.selected_score"]))
    assert champion.run_id == best.info.run_id  # the final whose configuration scored best on validation

    report = subprocess.run([sys.executable, "-m", "analysis", "report", "--study", "cross_domain", "--tracking-uri",
                             uri, "--no-log"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert report.returncode == 0, report.stderr
    folder = next((run_dir / "reports").iterdir())
    section = folder.joinpath("report.md").read_text().split("## Paper-comparable numbers", 1)[1].split("\n## ")[0]
    assert "One final per `sam_mode`, side by side on the target domain" in section and "no hold-out" in section
    assert "| sam_mode | n | target/mAP | target/rank1 | source/mAP | source/rank1 |" in section
    assert "from scratch" not in section  # a smoke launch is compared with nothing
    sides = [line.split(" | ")[0].strip("| ") for line in section.splitlines() if line.startswith(("| none",
                                                                                                   "| pos", "| neg"))]
    assert sides[:4] == modes
    assert all(r.data.tags["msinet.trial"] in section for r in final)
