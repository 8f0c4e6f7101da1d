"""The standalone commands: JSON on the last line, clear errors and a non-zero exit on bad input."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _run(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", *args], cwd=cwd, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_retrain_then_evaluate_its_checkpoint(synthetic_root, tmp_path):
    out = tmp_path / "retrain"
    done = _run("trials.retrain", "--scale", "smoke", "--data-dir", str(synthetic_root), "--epochs", "1",
                "--ids-per-batch", "4", "--out", str(out), "--set", "eval_interval=1")
    assert done.returncode == 0, done.stderr
    final = json.loads(done.stdout.strip().splitlines()[-1])
    assert {"source/mAP", "source/rank1", "val/mAP", "params", "genotype"} <= set(final)

    again = _run("trials.retrain", "--scale", "smoke", "--data-dir", str(synthetic_root), "--out", str(out))
    assert again.returncode == 2 and "--resume" in again.stderr  # nothing recorded is overwritten

    scored = _run("trials.evaluate", "--weights", str(out / "checkpoint" / "model.pt"), "--dataset",
                  "market1501", "--data-dir", str(synthetic_root), "--height", "64")
    assert scored.returncode == 0, scored.stderr
    metrics = json.loads(scored.stdout.strip().splitlines()[-1])
    assert metrics["genotype"] == final["genotype"]
    assert abs(metrics["source/mAP"] - final["source/mAP"]) < 1e-6


@pytest.mark.slow
def test_search_prints_its_genotype(synthetic_root, tmp_path):
    done = _run("trials.search", "--scale", "smoke", "--data-dir", str(synthetic_root), "--epochs", "1",
                "--ids-per-batch", "4", "--instances", "2", "--out", str(tmp_path))
    assert done.returncode == 0, done.stderr
    final = json.loads(done.stdout.strip().splitlines()[-1])
    assert len(final["genotype"].split("/")) == 6


@pytest.mark.parametrize("args, needle", [
    (["--genotype", "ag-ag/exc"], "genotype"),
    (["--genotype", "nonsense_name"], "nonsense_name"),
    (["--data-dir", "/no/such/folder"], "/no/such/folder"),
    (["--instances", "40", "--set", "pk_replacement=false"], "40"),
    (["--set", "colour=red"], "colour"),
])
def test_bad_retrain_input_is_a_clear_error(synthetic_root, tmp_path, args, needle):
    base = ["trials.retrain", "--scale", "smoke", "--epochs", "1", "--out", str(tmp_path)]
    if "--data-dir" not in args:
        base += ["--data-dir", str(synthetic_root)]
    done = _run(*base, *args)
    assert done.returncode == 2, done.stderr
    assert needle in done.stderr and "Traceback" not in done.stderr


def test_help_documents_every_required_flag():
    done = _run("trials.retrain", "--help")
    for flag in ("--dataset", "--data-dir", "--target-dataset", "--genotype", "--epochs", "--height", "--width",
                 "--ids-per-batch", "--instances", "--lr", "--sam-mode", "--sam-ratio", "--pretrained", "--seed",
                 "--device", "--out"):
        assert flag in done.stdout


def test_evaluate_scores_the_three_vehicleid_test_lists_in_one_call(tmp_path):
    from trials.data import synthesize

    synthesize("vehicleid", tmp_path, ids=18, seed=3)
    scored = _run("trials.evaluate", "--dataset", "vehicleid", "--data-dir", str(tmp_path), "--height", "32",
                  "--vehicleid-test-size", "all")
    assert scored.returncode == 0, scored.stderr
    metrics = json.loads(scored.stdout.strip().splitlines()[-1])
    for size in (800, 1600, 2400):
        assert 0 < metrics[f"source/test{size}/mAP"] <= 1
    default = _run("trials.evaluate", "--dataset", "vehicleid", "--data-dir", str(tmp_path), "--height", "32")
    assert default.returncode == 0, default.stderr
    # The default list is the authors' 2400: the same untrained network (seed 0) scores the same on it.
    assert json.loads(default.stdout.strip().splitlines()[-1])["source/mAP"] == metrics["source/test2400/mAP"]
