"""launch.py as a user meets it: --list, --dry-run, and one clear paragraph and a non-zero exit on bad input."""

import socket
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_list_names_every_study_with_a_description(launch):
    result = launch("--list")
    assert result.returncode == 0, result.stderr
    lines = dict(line.split(None, 1) for line in result.stdout.splitlines())
    assert {"smoke", "search", "in_domain", "cross_domain", "nas", "tcm_ablation"} <= set(lines)
    assert all(len(text) > 20 for text in lines.values())


@pytest.mark.slow
def test_dry_run_prints_the_plan_and_runs_nothing(launch, run_dir):
    result = launch("--study", "cross_domain", "--scale", "smoke", "--synthetic", "--dry-run", "--run-dir",
                    str(run_dir), "--gpus-per-trial", "0.25")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for words in ("optimises val/mAP", "market1501 (source)", "msmt17 (target)", "every one of", "pos_neg",
                  "Optuna (TPE, seed 0)", "0.25 GPU per trial", f"sqlite:///{run_dir}/mlflow.db",
                  str(run_dir / "tune")):
        assert words in out, words
    assert not run_dir.exists()  # nothing generated, no store created


def error_of(result) -> str:
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr  # one paragraph, no traceback
    return lines[0]


def test_unknown_study(launch):
    assert "unknown study 'cross-domain'" in error_of(launch("--study", "cross-domain", "--dry-run"))


def test_malformed_study_file(launch, tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("description: x\nphases:\n  retrain: {kind: retrain, num_samples: zero}\n")
    message = error_of(launch("--study", str(path), "--dry-run"))
    assert str(path) in message and "phases.retrain.num_samples" in message


def test_unknown_set_key(launch):
    message = error_of(launch("--study", "smoke", "--set", "epoch=3", "--dry-run"))
    assert "unknown key 'epoch'" in message and "did you mean 'epochs'" in message


@pytest.mark.slow
def test_missing_data_dir_names_the_layout_and_synthetic(launch, tmp_path, run_dir):
    message = error_of(launch("--study", "in_domain", "--scale", "smoke", "--data-dir", str(tmp_path / "none"),
                              "--run-dir", str(run_dir)))
    assert "market1501" in message and str(tmp_path / "none") in message and "--synthetic" in message


@pytest.mark.slow
def test_unreachable_tracking_server(launch, run_dir):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    message = error_of(launch("--study", "smoke", "--tracking-uri", f"http://127.0.0.1:{port}", "--run-dir",
                              str(run_dir)))
    assert f"http://127.0.0.1:{port}" in message and "cannot be reached" in message


def test_resume_without_an_interrupted_launch(launch, run_dir):
    assert "no unfinished launch" in error_of(launch("--study", "smoke", "--resume", "--run-dir", str(run_dir)))


def test_resume_refuses_a_changed_plan(launch, run_dir):
    assert "drop --set" in error_of(launch("--study", "smoke", "--resume", "--set", "lr=0.1"))


def test_the_code_version_is_the_commit_in_a_git_checkout_and_a_digest_elsewhere(tmp_path):
    """The parent run's code version (the shared launch runs in a copy without git: test_study_e2e)."""
    import shutil

    from study_tracking import code_version_tags

    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    tags = code_version_tags(ROOT)
    assert len(tags["mlflow.source.git.commit"]) == 40 and tags["msinet.git_dirty"] in ("true", "false")
    for name in ("spaces", "trials", "platform", "analysis"):
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    digest = code_version_tags(tmp_path)["msinet.code_digest"]
    (tmp_path / "trials" / "losses.py").write_text("# changed\n", encoding="utf-8")
    assert len(digest) == 16 and code_version_tags(tmp_path)["msinet.code_digest"] != digest


def test_a_run_folder_inside_the_checkout_is_not_shipped_to_the_workers(tmp_path):
    """`--run-dir experiments/a` keeps its checkpoints and stores out of the code Ray packages for the trials
    (with them the next launch stopped at Ray's 512 MiB package limit): checked with Ray's own matcher."""
    import json
    import subprocess
    import sys

    from ray._private.runtime_env.packaging import _get_excludes

    script = ("import json, sys; from pathlib import Path; sys.path.insert(0, 'platform'); import launch; "
              "print(json.dumps([launch.code_excludes(Path(p)) for p in sys.argv[1:]]))")
    done = subprocess.run([sys.executable, "-c", script, "experiments/a", str(tmp_path), "."], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    inside, outside, whole = json.loads(done.stdout)
    assert outside == whole and inside == [*outside, "/experiments/a"]
    excluded = _get_excludes(ROOT, inside)
    assert excluded(ROOT / "experiments" / "a" / "mlflow.db") and excluded(ROOT / "runs" / "tune")
    assert not excluded(ROOT / "experiments" / "b.yaml") and not excluded(ROOT / "trials" / "data" / "registry.py")
