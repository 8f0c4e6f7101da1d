"""Misuse and concurrency: one clear error paragraph before anything starts, and records never shared or lost.

The concurrency cases run real launch processes against one fresh run folder."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from study_launches import LaunchError, LaunchLock

ROOT = Path(__file__).resolve().parents[2]
TINY = {
    "description": "one tiny retrain",
    "default_scale": "smoke",
    "synthetic": True,
    "phases": {"retrain": {"kind": "retrain", "resources": {"cpu": 1, "gpu": 0},
                           "config": {"dataset": "market1501", "genotype": "msmt", "epochs": 2, "eval_interval": 1}}},
}


def _error(result) -> str:
    assert result.returncode == 2, (result.returncode, result.stdout[-1000:], result.stderr[-2000:])
    assert result.stderr.startswith("error:") and "Traceback" not in result.stderr, result.stderr
    return result.stderr


@pytest.mark.parametrize("args, needle", [
    (["--set", "metric=val/map"], "did you mean 'val/mAP'"),
    (["--set", "lr=.inf"], "--set lr=inf"),
    (["--tracking-uri", "sqlite:////tmp"], "is a folder"),
    (["--tracking-uri", "/tmp/store"], "file store"),
    (["--tracking-uri", "file:///tmp/store"], "file store"),
    (["--study", "missing.yaml"], "no such study file"),
])
@pytest.mark.slow
def test_bad_flags_are_one_error_paragraph(launch, run_dir, args, needle):
    study = [] if "--study" in args else ["--study", "smoke"]
    text = _error(launch(*study, *args, "--run-dir", str(run_dir), "--dry-run"))
    assert needle in text and ".yaml.yaml" not in text


@pytest.mark.slow
def test_a_run_dir_that_cannot_be_written_is_refused_before_ray(launch, tmp_path):
    a_file = tmp_path / "file"
    a_file.write_text("")
    for run_dir in (a_file / "runs", Path("/proc/msinet-cannot-write")):
        started = time.monotonic()
        text = _error(launch("--study", "smoke", "--run-dir", str(run_dir)))
        assert "--run-dir" in text and time.monotonic() - started < 60


def test_argparse_refuses_impossible_cpu_counts(launch, run_dir):
    for value in ("-1", "0"):
        result = launch("--study", "smoke", "--num-cpus", value, "--run-dir", str(run_dir))
        assert result.returncode == 2 and "expected an integer >= 1" in result.stderr


def test_an_unknown_dataset_on_a_synthetic_study_is_named(launch, run_dir):
    text = _error(launch("--study", "smoke", "--set", "dataset=foo", "--run-dir", str(run_dir), "--dry-run"))
    assert "--set dataset=foo" in text and "unknown dataset 'foo'" in text


def test_resume_of_an_unknown_launch_lists_the_ones_that_exist(launch, run_dir):
    record = run_dir / "launches" / "smoke" / "20260101-000000-abcd.json"
    record.parent.mkdir(parents=True)
    record.write_text(json.dumps({"status": "interrupted"}))
    text = _error(launch("--study", "smoke", "--resume", "nope", "--run-dir", str(run_dir)))
    assert "20260101-000000-abcd (interrupted)" in text


PLATFORM = f"import sys; sys.path[:0] = [{str(ROOT / 'platform')!r}, {str(ROOT)!r}]; "


def test_launch_ids_claimed_at_once_are_unique(tmp_path):
    code = PLATFORM + ("from pathlib import Path; from study_launches import claim_launch; "
                       f"print(' '.join(claim_launch(Path({str(tmp_path)!r}))[0] for _ in range(10)))")
    claimers = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True) for _ in range(4)]
    ids = [i for c in claimers for i in c.communicate(timeout=120)[0].split()]
    assert len(ids) == 40 and len(set(ids)) == 40 and len(list(tmp_path.glob("*.json"))) == 40


def test_a_live_drivers_launch_cannot_be_resumed_and_a_dead_ones_can(tmp_path):
    record = tmp_path / "launch.json"
    record.write_text("{}")
    code = PLATFORM + ("import time; from pathlib import Path; from study_launches import LaunchLock; "
                       f"LaunchLock(Path({str(record)!r})).acquire(); print('held', flush=True); time.sleep(600)")
    driver = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert driver.stdout.readline().strip() == "held"
        with pytest.raises(LaunchError, match=f"pid {driver.pid}"):
            LaunchLock(record).refuse_if_running()
    finally:
        driver.send_signal(signal.SIGKILL)  # the driver dies without cleaning up
        driver.wait()
    LaunchLock(record).refuse_if_running()  # the kernel released its lock


@pytest.mark.slow
def test_two_launches_at_once_into_a_fresh_run_folder_and_a_resume_of_a_live_one(tmp_path):
    from mlflow.tracking import MlflowClient

    study = tmp_path / "tiny.yaml"
    study.write_text(yaml.safe_dump(TINY, sort_keys=False))
    run_dir = tmp_path / "runs"
    command = [sys.executable, "platform/launch.py", "--study", str(study), "--run-dir", str(run_dir),
               "--num-cpus", "1"]
    drivers = [subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for _ in range(2)]
    try:
        deadline = time.monotonic() + 400
        running = []
        while time.monotonic() < deadline and not running:
            records = [json.loads(p.read_text() or "{}") for p in (run_dir / "launches" / "tiny").glob("*.json")] \
                if (run_dir / "launches" / "tiny").exists() else []
            running = [r for r in records if r.get("status") == "running"]
            time.sleep(0.5)
        assert running, "no launch reached its phase"
        refused = subprocess.run([*command[:6], "--resume", running[0]["launch"]], cwd=ROOT, capture_output=True,
                                 text=True, timeout=120)
        assert refused.returncode == 2 and "still running" in refused.stderr, refused.stderr[-2000:]
        results = [d.communicate(timeout=600) for d in drivers]
    finally:
        for driver in drivers:
            if driver.poll() is None:
                driver.kill()
    for driver, (_, err) in zip(drivers, results, strict=True):
        assert driver.returncode == 0, err[-3000:]
    client = MlflowClient(f"sqlite:///{run_dir}/mlflow.db")
    runs = client.search_runs([client.get_experiment_by_name("tiny").experiment_id])
    parents = [r for r in runs if r.data.tags.get("msinet.role") == "launch"]
    trials = [r for r in runs if r.data.tags.get("msinet.role") == "trial"]
    assert len({r.data.tags["msinet.launch"] for r in parents}) == 2
    assert len(trials) == 2 and {r.info.status for r in runs} == {"FINISHED"}
    assert {r.data.tags["mlflow.parentRunId"] for r in trials} == {r.info.run_id for r in parents}
    assert len([p for p in (run_dir / "tune").iterdir() if p.is_dir()]) == 2


# ------------------------------------------------------------------ messages name what the user gave


def _as_another_user(command: list[str]) -> list[str] | None:
    """Run as an unprivileged user, for whom a read-only folder is read-only (root writes anywhere)."""
    import os
    import shutil

    if os.geteuid() != 0:
        return command
    setpriv = shutil.which("setpriv")
    return [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", *command] if setpriv else None


@pytest.mark.slow
def test_an_unwritable_run_dir_is_named_as_the_run_dir_not_as_a_tracking_uri(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    tmp_path.chmod(0o755)
    for dry in (["--dry-run"], []):
        command = _as_another_user([sys.executable, "platform/launch.py", "--study", "smoke", "--run-dir",
                                    str(locked / "runs"), *dry])
        if command is None:
            pytest.skip("running as root without setpriv: no folder is read-only")
        text = _error(subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120))
        assert text.startswith(f"error: --run-dir {locked / 'runs'}: cannot write there") and "tracking" not in text
    (tmp_path / "runs" / "mlflow.db").mkdir(parents=True)  # the default store's path is taken by a folder
    text = _error(subprocess.run([sys.executable, "platform/launch.py", "--study", "smoke", "--run-dir",
                                  str(tmp_path / "runs"), "--dry-run"], cwd=ROOT, capture_output=True, text=True,
                                 timeout=120))
    assert text.startswith(f"error: --run-dir {tmp_path / 'runs'}: its default tracking URI sqlite:///")
    assert "--tracking-uri" not in text


@pytest.mark.slow
def test_data_errors_suggest_synthetic_only_for_built_in_layouts_and_say_where_they_read(launch, tmp_path):
    from trials.data import synthesize

    run_dir = tmp_path / "runs"
    synthesize("list", tmp_path / "data", ids=8, seed=0)
    (tmp_path / "data" / "custom" / "train.csv").write_text("path,pid\n")  # lists no image
    absolute = f"list:{tmp_path / 'data' / 'custom'}"
    cases = [  # (extra launch flags, the start of the message, is --synthetic a way out)
        (["--set", f"dataset={absolute}"], f"reads {absolute} (the folder {tmp_path / 'data' / 'custom'})", False),
        (["--data-dir", str(tmp_path / "data"), "--set", "dataset=list:custom"],
         f"reads list:custom (the folder {tmp_path / 'data' / 'custom'}, under --data-dir {tmp_path / 'data'})",
         False),
        (["--data-dir", str(tmp_path / "data"), "--set", "dataset=no_such_reid_module:load"],
         f"reads no_such_reid_module:load (a loader written in Python, given --data-dir {tmp_path / 'data'})",
         False),
        (["--data-dir", str(tmp_path / "data")], f"reads market1501 from --data-dir {tmp_path / 'data'}", True),
    ]
    for flags, reads, hint in cases:
        text = _error(launch("--study", "in_domain", "--scale", "smoke", "--run-dir", str(run_dir), *flags))
        assert text.startswith(f"error: data: study 'in_domain' {reads}, which cannot be used"), text
        assert ("--synthetic" in text) == hint, text
    assert not (run_dir / "tune").exists()


@pytest.mark.parametrize("dataset", ["market1501+veri", "veri+list:mine"])
def test_dry_run_refuses_what_the_launch_refuses_a_person_and_vehicle_mix(launch, tmp_path, dataset):
    from trials.data import synthesize

    synthesize("list", tmp_path, ids=8, seed=0)
    (tmp_path / "custom").rename(tmp_path / "mine")
    text = _error(launch("--study", "in_domain", "--scale", "smoke", "--data-dir", str(tmp_path), "--run-dir",
                         str(tmp_path / "runs"), "--set", f"dataset={dataset}", "--dry-run"))
    assert f"trains on {dataset}" in text and "mixes persons and vehicles" in text


@pytest.mark.parametrize("flag, value, expected", [
    ("--num-cpus", "abc", "expected an integer >= 1, got 'abc'"),
    ("--num-samples", "2.5", "expected an integer >= 1, got '2.5'"),
    ("--gpus-per-trial", "half", "expected a number >= 0 (fractions allowed), got 'half'"),
    ("--seed", "x", "expected an integer, got 'x'"),
])
def test_bad_numbers_are_named_by_flag_and_value(launch, run_dir, flag, value, expected):
    result = launch("--study", "smoke", flag, value, "--run-dir", str(run_dir), "--dry-run")
    assert result.returncode == 2 and f"argument {flag}: {expected}" in result.stderr and "_" + "positive" not in \
        result.stderr, result.stderr


@pytest.mark.slow
def test_a_diverging_study_fails_each_trial_once_with_one_line_and_keeps_the_tracebacks(tmp_path):
    """`--set lr=1e6`: the same seed diverges the same way on every attempt, so no trial is retried."""
    import optuna
    from mlflow.tracking import MlflowClient

    study = tmp_path / "tiny.yaml"
    study.write_text(yaml.safe_dump({**TINY, "phases": {"retrain": {
        **TINY["phases"]["retrain"], "space": {"weight_decay": {"loguniform": [1e-4, 1e-3]}}, "num_samples": 2}}},
        sort_keys=False))
    run_dir = tmp_path / "runs"
    started = time.monotonic()
    done = subprocess.run([sys.executable, "platform/launch.py", "--study", str(study), "--run-dir", str(run_dir),
                           "--num-cpus", "2", "--set", "lr=1e6"], cwd=ROOT, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 1, done.stderr[-3000:]  # every trial failed
    failed = [line for line in done.stderr.splitlines() if "FAILED" in line]
    assert len(failed) == 2 and all("(divergence, not retried): the weights became" in line
                                    or "(divergence, not retried): loss" in line for line in failed), failed
    assert "retrying" not in done.stderr and "Traceback" not in done.stderr, done.stderr[-3000:]
    errors = [e.read_text() for e in (run_dir / "tune").rglob("error.txt")]
    assert len(errors) == 2, errors
    for text in errors:  # one attempt each, the worker's traceback kept there, down to the check that raised
        assert text.count("Failure #") == 1 and "in read" in text and "NonFiniteLossError" in text, text
        assert "TrialFailed: divergence" in text, text  # the divergence watch's read raised it on the worker
    client = MlflowClient(f"sqlite:///{run_dir}/mlflow.db")
    runs = client.search_runs([client.get_experiment_by_name("tiny").experiment_id])
    trials = [r for r in runs if r.data.tags.get("msinet.role") == "trial"]
    assert len(trials) == 2 and {r.info.status for r in trials} == {"FAILED"}
    assert all(r.data.tags["msinet.failure"].startswith("divergence: ") for r in trials)
    storage = f"sqlite:///{run_dir}/optuna.db"
    (summary,) = optuna.get_all_study_summaries(storage)
    states = {t.state for t in optuna.load_study(study_name=summary.study_name, storage=storage).trials}
    assert states == {optuna.trial.TrialState.FAIL}
    assert time.monotonic() - started < 400
