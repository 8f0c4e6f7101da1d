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
    assert all((out / "checkpoint" / name).is_file() for name in ("rank_lists.png", "activation_maps.png"))

    again = _run("trials.retrain", "--scale", "smoke", "--data-dir", str(synthetic_root), "--out", str(out))
    assert again.returncode == 2 and "--resume" in again.stderr  # nothing recorded is overwritten

    scored = _run("trials.evaluate", "--weights", str(out / "checkpoint" / "model.pt"), "--dataset",
                  "market1501", "--data-dir", str(synthetic_root), "--height", "64", "--visrank", "3",
                  "--visrank-queries", "2")
    assert scored.returncode == 0, scored.stderr
    metrics = json.loads(scored.stdout.strip().splitlines()[-1])
    assert metrics["genotype"] == final["genotype"]
    assert abs(metrics["source/mAP"] - final["source/mAP"]) < 1e-6
    views = out / "checkpoint" / "visrank"  # beside --weights by default
    assert metrics["rank_lists_png"] == str(views / "rank_lists.png")
    record = json.loads((views / "rank_lists.json").read_text())
    assert record["top_k"] == 3 and len(record["queries"]) == 2
    assert all(len(query["gallery"]) == 3 for query in record["queries"])
    trained = json.loads((out / "checkpoint" / "rank_lists.json").read_text())
    assert record["queries"][0]["index"] == trained["queries"][0]["index"]  # the seeded queries are shared


@pytest.mark.parametrize("args", [["--visrank", "-1"], ["--visrank", "4", "--visrank-queries", "0"]])
def test_bad_visrank_values_are_a_clear_error(synthetic_root, args):
    done = _run("trials.evaluate", "--dataset", "market1501", "--data-dir", str(synthetic_root), *args)
    assert done.returncode == 2 and "--visrank" in done.stderr and "Traceback" not in done.stderr


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
