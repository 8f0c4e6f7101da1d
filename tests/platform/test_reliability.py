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
def test_bad_flags_are_one_error_paragraph(launch, run_dir, args, needle):
    study = [] if "--study" in args else ["--study", "smoke"]
    text = _error(launch(*study, *args, "--run-dir", str(run_dir), "--dry-run"))
    assert needle in text and ".yaml.yaml" not in text


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
