"""The device check keeps working: its CPU mode runs every section, on a Python where importing matplotlib, pandas,
Ray, MLflow and Optuna fails (the lent GPU machines have torch, torchvision, numpy and PIL only), and writes its
JSON and log into the one folder it is given."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MISSING = ("matplotlib", "pandas", "ray", "mlflow", "optuna")


def bare_python_env(folder: Path) -> dict[str, str]:
    """An environment whose Python cannot import MISSING: a sitecustomize on PYTHONPATH marks them absent."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sitecustomize.py").write_text(f"import sys\n\nfor name in {MISSING!r}:\n    sys.modules[name] = None\n")
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(folder), str(ROOT)])}


@pytest.mark.slow
def test_device_check_runs_in_cpu_mode_without_plotting_tracking_or_ray(tmp_path):
    env = bare_python_env(tmp_path / "site")
    for name in MISSING:  # the stand-in machine really lacks them
        assert subprocess.run([sys.executable, "-c", f"import {name}"], env=env, capture_output=True).returncode != 0

    out = tmp_path / "check"
    done = subprocess.run([sys.executable, "benchmarks/device_check.py", "--device", "cpu", "--out", str(out)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert sorted(p.name for p in out.iterdir()) == ["device_check.json", "device_check.log", "throughput.json"]
    report = json.loads((out / "device_check.json").read_text())
    assert report["passed"] and report["device"] == "cpu" and report["torch"] == __import__("torch").__version__
    sections = report["sections"]
    assert list(sections) == ["cuda_tests", "compiled_vs_eager", "sync_free", "bf16_vs_fp32", "throughput"]

    assert sections["cuda_tests"]["status"] == "passed"  # pytest ran the CUDA-only tests' files: all skipped here
    assert "tests/trials/test_compiled_steps.py" in sections["cuda_tests"]["files"]
    compared = sections["compiled_vs_eager"]
    for kind in ("retrain", "search"):
        assert compared[kind]["agree"], compared[kind]
        assert set(compared[kind]["update_rel_diff"]) == ({"weights"} if kind == "retrain" else
                                                          {"weights", "alpha", "memories"})
    assert sections["sync_free"]["status"] == "skipped"  # no CUDA: set_sync_debug_mode needs it
    for precision in ("fp32", "bf16"):
        assert 0 < sections["bf16_vs_fp32"][precision]["source/mAP"] <= 1
    throughput = sections["throughput"]
    assert throughput["status"] == "complete", throughput
    assert throughput["figures"]["retrain_images_per_s"]["device"] > 0
    assert throughput["figures"]["packed_retrain_images_per_s"]["1"] > 0
    assert "device check passed" in (out / "device_check.log").read_text()
