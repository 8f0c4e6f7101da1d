"""What a launch prints about its choices: each hand-over with the validation score, interval and size of the
trial it took, "undecided" when the top two intervals overlap (also under `--resume --dry-run`), and the
leaderboard's columns and lines; the smoke study's validation hold-out."""

import json

import pytest
import study_spec
from study_summary import choice_lines, leaderboard, shown_table

SEARCHED = "exc-ag/none-exc/exc-exc/ag-ag/cross_att-exc/ag-exc"
OTHER = "ag-ag/exc-ag/cross_att-ag/ag-none/ag-cross_att/exc-cross_att"


def rows() -> list[dict]:
    """Two search trials whose val/mAP intervals overlap, a retrain of each."""
    def row(phase, trial, genotype, value, low, high, status="finished", **extra):
        return {"phase": phase, "trial": trial, "status": status, "group": "tcm", "genotype": genotype, "epoch": 6,
                "config": {"genotype": genotype}, "val/mAP": value, "val/mAP_ci_low": low, "val/mAP_ci_high": high,
                "val/num_valid_queries": 31, "val/num_valid_ids": 16, **extra}

    decision = f"{SEARCHED.replace('-', '?-', 1)} (1 of 12 slots decided, margins 0.001-0.062)"
    return [row("search", "s1", SEARCHED, 0.15, 0.10, 0.21, decision=decision, **{"alpha/min_margin": 0.001}),
            row("search", "s2", OTHER, 0.09, 0.06, 0.14, **{"alpha/min_margin": 0.0}),
            row("search", "s3", OTHER, 0.30, 0.20, 0.40, status="stopped early"),
            row("retrain", "r1", SEARCHED, 0.41, 0.30, 0.52, decision=decision, **{"source/mAP": 0.26})]


@pytest.mark.slow
def test_a_resumed_dry_run_prints_the_hand_over_with_its_basis(launch, run_dir):
    """A launch interrupted after its search phase: `--resume --dry-run` shows what the retrain phase took."""
    result = launch("--study", "smoke", "--dry-run", "--run-dir", str(run_dir))  # the plan only: nothing written
    assert result.returncode == 0 and "takes from phase" not in result.stdout
    study = study_spec.load_study("smoke")
    record = {"study": study.to_dict(), "launch": "20260101-000000-abcd", "seed": 0, "synthetic": True,
              "data_dir": str(run_dir / "synthetic"), "tracking_uri": f"sqlite:///{run_dir}/mlflow.db",
              "optuna_storage": f"sqlite:///{run_dir}/optuna.db", "storage_path": str(run_dir / "tune"),
              "records": str(run_dir / "launches" / "smoke"), "status": "interrupted",
              "phases": {"search": {"status": "done", "rows": rows()[:3]},
                         "retrain": {"status": "pending", "genotypes": [SEARCHED, OTHER],
                                     "groups": {SEARCHED: "tcm", OTHER: "tcm"}}}}
    folder = run_dir / "launches" / "smoke"
    folder.mkdir(parents=True)
    record["state_file"] = str(folder / f"{record['launch']}.json")
    (folder / f"{record['launch']}.json").write_text(json.dumps(record))
    result = launch("--study", "smoke", "--resume", "--dry-run", "--run-dir", str(run_dir))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "phase retrain takes from phase search (chosen by val/mAP, max):" in out
    assert ("exc?-ag/none-exc/exc-exc/ag-ag/cross_att-exc/ag-exc (1 of 12 slots decided, margins 0.001-0.062) <- s1 "
            "(finished): val/mAP 0.1500 (95 % CI 0.100-0.210) on 31 queries of 16 identities") in out
    assert f"{OTHER} <- s3 (stopped early): val/mAP 0.3000" in out  # the best trial of that genotype
    assert ("ranking of phase search: s3 by val/mAP 0.3000 (95 % CI 0.200-0.400) on 31 queries of 16 identities; "
            "runner-up s1 0.1500 (95 % CI 0.100-0.210): the intervals overlap, so the choice is undecided") in out


def test_the_leaderboard_shows_margins_intervals_and_the_choice_per_phase():
    study = study_spec.load_study("smoke")
    table = leaderboard(rows(), study)
    assert list(table["trial"]) == ["s1", "s2", "s3", "r1"]  # the stopped trial after those that finished
    shown = shown_table(table, "val/mAP").set_index("trial")
    assert shown.loc["s1", "genotype"] == "exc?-ag/none-exc/exc-exc/ag-ag/cross_att-exc/ag-exc"
    assert shown.loc["s2", "genotype"] == OTHER and shown.loc["s1", "margin"] == 0.001
    assert shown.loc["s1", "95% CI"] == "0.100-0.210" and shown.loc["r1", "val n"] == "31q/16id"
    assert not any(column.endswith("_ci_low") or column == "decision" for column in shown.columns)
    lines = choice_lines(table, study)
    assert lines[0] == ("search: best s1 by val/mAP 0.1500 (95 % CI 0.100-0.210) on 31 queries of 16 identities; "
                        "runner-up s2 0.0900 (95 % CI 0.060-0.140): the intervals overlap, so the choice is undecided")
    assert lines[1].startswith("retrain: best r1") and lines[1].endswith("the only candidate")


def test_the_smoke_study_validates_on_16_identities():
    """64 synthetic ids (32 train), half of the training ids held out: 16 to choose on, 16 to train on."""
    from trials.config import make_config

    study = study_spec.load_study("smoke")
    assert study.synthetic and study.synthetic_ids == {"market1501": 64}
    for phase in study.phases:
        config = make_config(phase.kind, phase.config)
        held = round(32 * config.val_fraction)
        assert (held, 32 - held) == (16, 16), phase.name
