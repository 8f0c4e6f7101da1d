"""The standalone commands: JSON on the last line, clear errors and a non-zero exit on bad input."""

import json
import signal
import subprocess
import sys
import time
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

    # --resume of a finished run: results untouched, the recorded metrics as the last line
    recorded = (out / "metrics.json").read_text()
    complete = _run("trials.retrain", "--scale", "smoke", "--data-dir", str(synthetic_root), "--epochs", "1",
                    "--ids-per-batch", "4", "--out", str(out), "--resume")
    assert complete.returncode == 0, complete.stderr
    assert "is complete" in complete.stderr
    assert json.loads(complete.stdout.strip().splitlines()[-1]) == final
    assert (out / "metrics.json").read_text() == recorded

    # scored at the size the weights were trained at (64x32 at smoke scale) without being told
    scored = _run("trials.evaluate", "--weights", str(out / "checkpoint" / "model.pt"), "--dataset",
                  "market1501", "--data-dir", str(synthetic_root), "--visrank", "3", "--visrank-queries", "2")
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

    # the state.pt beside model.pt holds the same network
    from_state = _run("trials.evaluate", "--weights", str(out / "checkpoint" / "state.pt"), "--dataset",
                      "market1501", "--data-dir", str(synthetic_root))
    assert from_state.returncode == 0, from_state.stderr
    assert abs(json.loads(from_state.stdout.strip().splitlines()[-1])["source/mAP"] - final["source/mAP"]) < 1e-6

    # a truncated file is named, not a torch traceback
    broken = tmp_path / "truncated.pt"
    broken.write_bytes((out / "checkpoint" / "model.pt").read_bytes()[:5000])
    bad = _run("trials.evaluate", "--weights", str(broken), "--dataset", "market1501", "--data-dir",
               str(synthetic_root))
    assert bad.returncode == 2 and str(broken) in bad.stderr and "Traceback" not in bad.stderr


@pytest.mark.slow
@pytest.mark.parametrize("args", [["--visrank", "-1"], ["--visrank", "4", "--visrank-queries", "0"]])
def test_bad_visrank_values_are_a_clear_error(synthetic_root, args):
    done = _run("trials.evaluate", "--dataset", "market1501", "--data-dir", str(synthetic_root), *args)
    assert done.returncode == 2 and "--visrank" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.slow
def test_ctrl_c_on_a_standalone_trial_says_how_to_continue(synthetic_root, tmp_path):
    out = tmp_path / "run"
    trial = subprocess.Popen([sys.executable, "-m", "trials.retrain", "--scale", "smoke", "--data-dir",
                              str(synthetic_root), "--epochs", "30", "--out", str(out)], cwd=ROOT,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             # Ctrl-C's default, even where pytest runs with SIGINT ignored (`pytest ... &`)
                             preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 300
        while not (out / "checkpoint" / "state.pt").exists() and time.monotonic() < deadline:
            time.sleep(0.5)
        trial.send_signal(signal.SIGINT)
        _, err = trial.communicate(timeout=120)
    finally:
        if trial.poll() is None:
            trial.kill()
    assert trial.returncode == 130, err[-2000:]
    assert "Traceback" not in err
    assert f"--out {out}" in err and "--resume" in err


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
    (["--lr", "inf"], "lr"),
])
@pytest.mark.slow
def test_bad_retrain_input_is_a_clear_error(synthetic_root, tmp_path, args, needle):
    base = ["trials.retrain", "--scale", "smoke", "--epochs", "1", "--out", str(tmp_path)]
    if "--data-dir" not in args:
        base += ["--data-dir", str(synthetic_root)]
    done = _run(*base, *args)
    assert done.returncode == 2, done.stderr
    assert needle in done.stderr and "Traceback" not in done.stderr


@pytest.mark.slow
def test_an_out_folder_that_cannot_be_written_is_refused_before_training(synthetic_root, tmp_path):
    a_file = tmp_path / "taken"
    a_file.write_text("")
    for out in (a_file, a_file / "below"):
        done = _run("trials.retrain", "--scale", "smoke", "--data-dir", str(synthetic_root), "--out", str(out))
        assert done.returncode == 2 and "is a file" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.slow
def test_help_documents_every_required_flag():
    done = _run("trials.retrain", "--help")
    for flag in ("--dataset", "--data-dir", "--target-dataset", "--genotype", "--epochs", "--height", "--width",
                 "--ids-per-batch", "--instances", "--lr", "--sam-mode", "--sam-ratio", "--pretrained", "--seed",
                 "--device", "--out"):
        assert flag in done.stdout


@pytest.mark.slow
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


@pytest.mark.parametrize("split, dataset", [
    ("Market-1501-v15.09.15/query", "market1501"),
    ("Market-1501-v15.09.15/bounding_box_test", "market1501"),
    ("Market-1501-v15.09.15/bounding_box_train", "market1501"),
    ("VeRi/image_test", "veri"),
])
def test_a_broken_image_of_any_split_stops_the_standalone_trial_before_training(synthetic_root, tmp_path, capsys,
                                                                                 split, dataset):
    import shutil

    from trials.retrain import run_retrain
    from trials.runtime.cli import main

    data = tmp_path / "data"
    shutil.copytree(synthetic_root, data)
    broken = sorted((data / split).glob("*.jpg"))[-1]
    broken.write_bytes(broken.read_bytes()[:40])  # a truncated file: the header parses, the pixels do not
    target = ["--target-dataset", "veri"] if dataset == "veri" else []
    with pytest.raises(SystemExit) as stop:
        main("retrain", run_retrain, ["--scale", "smoke", "--data-dir", str(data), "--out", str(tmp_path / "out"),
                                      *target])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and err.startswith(f"error: {dataset}: 1 image(s) cannot be read: {broken}"), err
    assert "Traceback" not in err and not (tmp_path / "out" / "checkpoint").exists()  # nothing trained
