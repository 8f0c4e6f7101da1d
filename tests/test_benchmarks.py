"""The GPU benchmarks keep working where they are meant to run: a lent GPU machine with torch, torchvision,
numpy and PIL only. Their CPU mode runs every section in small sizes with matplotlib, pandas, Ray, MLflow and
Optuna made unimportable, and writes the JSON keys the GPU figures are read from."""

import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
BARE = ("matplotlib", "pandas", "ray", "mlflow", "optuna", "scipy", "yaml", "psutil", "onnx", "onnxruntime")


@pytest.fixture(scope="module")
def bare_env(tmp_path_factory):
    """The environment of a bare GPU machine: a sitecustomize on PYTHONPATH makes every other package fail to
    import (in the benchmark and in every process it starts)."""
    folder = tmp_path_factory.mktemp("bare-machine")
    (folder / "sitecustomize.py").write_text(f"import sys\nfor name in {BARE!r}:\n    sys.modules[name] = None\n")
    return {**os.environ, "PYTHONPATH": str(folder)}


def load_benchmark(name: str):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    spec = importlib.util.spec_from_file_location(f"benchmark_{name}", ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_bare_machine_cannot_import_the_other_packages(bare_env):
    done = subprocess.run([sys.executable, "-c", "import matplotlib"], env=bare_env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode != 0 and "ModuleNotFoundError" in done.stderr


@pytest.mark.slow
def test_gpu_throughput_runs_in_cpu_mode_on_a_bare_machine(tmp_path, bare_env):
    out = tmp_path / "throughput.json"
    done = subprocess.run([sys.executable, "benchmarks/gpu_throughput.py", "--device", "cpu", "--height", "32",
                           "--classes", "12", "--ids", "12", "--iters", "1", "--warmup", "1", "--repeats", "1",
                           "--workers", "0", "--ids-per-batch", "4", "--instances", "2", "--variants", "pil_fp32",
                           "device", "--packing", "1", "2", "--mps", "--data-dir", str(tmp_path / "data"),
                           "--json", str(out)], cwd=ROOT, env=bare_env, capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stderr[-3000:]
    figures = json.loads(out.read_text())
    for key in ("retrain_images_per_s", "search_images_per_s"):
        assert set(figures[key]) == {"pil_fp32", "device"} and all(v > 0 for v in figures[key].values())
    assert figures["device"] == "cpu" and figures["torch"] == __import__("torch").__version__
    assert "retrain/device" in figures["peak_mib"]
    assert figures["runs"]["retrain/device"] == "data resident, fp32"
    assert figures["runs"]["retrain/pil_fp32"] == "data loader (0 loader processes), fp32"
    # packed: all images over the span from the first start to the last end, not the sum of own rates
    assert set(figures["packed_retrain_images_per_s"]) == {"1", "2"}
    two = figures["details"]["packed/2"]["per_trial"]
    span = max(t["end"] for t in two) - min(t["start"] for t in two)
    assert figures["packed_retrain_images_per_s"]["2"] == pytest.approx(sum(t["images"] for t in two) / span)
    assert figures["mps"] == {"available": False, "reason": "MPS serves CUDA devices only"}


def test_rows_say_what_really_ran_on_the_device():
    """A variant's name says what was asked; on a CPU bf16 autocast and channels_last are off (the trials turn
    them on for CUDA only) and inductor makes no CUDA graphs."""
    import torch

    from trials.config import make_config

    timing = load_benchmark("gpu_timing")
    asked = make_config("retrain", {"amp": True, "channels_last": True, "compile": True, "sam_mode": "pos_neg"})
    assert timing.runs(asked, torch.device("cpu")) == ("fp32 (amp asked: autocast is CUDA-only), compiled (inductor), "
                                                       "SAM pos_neg")
    assert timing.runs(asked, torch.device("cuda")) == ("bf16 autocast, channels_last, compiled (inductor, CUDA "
                                                        "graphs), SAM pos_neg")
    assert timing.runs(make_config("retrain", {}), torch.device("cuda")) == "fp32"


def test_packed_rate_counts_every_image_over_the_whole_span():
    """Two processes started together; one ends at 1 s, the other at 3 s. Each one's own rate summed
    (100 + 150 images/s) claims more than the device delivered: 400 images in 3 s."""
    throughput = load_benchmark("gpu_throughput")
    results = [{"images": 100, "start": 10.0, "end": 11.0, "images_per_s": 100.0},
               {"images": 300, "start": 10.0, "end": 12.0, "images_per_s": 150.0},
               {"images": 0, "start": 10.5, "end": 13.0, "images_per_s": 0.0}]
    assert throughput.aggregate_rate(results) == pytest.approx(400 / 3.0)


def test_packed_processes_that_write_a_lot_to_stderr_do_not_block(tmp_path):
    """A child that writes 1 MB to stderr before it is ready (compile logs do) blocked on a pipe nobody read
    until the deadline; its output goes to a file now."""
    throughput = load_benchmark("gpu_throughput")
    child = ("import json, os, pathlib, sys, time\n"
             "sys.stderr.write('x' * 2**20); sys.stderr.flush()\n"
             f"folder = pathlib.Path({str(tmp_path)!r})\n"
             "(folder / f'ready-{os.getpid()}').write_text('')\n"
             "while not (folder / 'go').exists(): time.sleep(0.01)\n"
             "print(json.dumps({'images': 10, 'start': time.time(), 'end': time.time() + 1}))\n")
    started = time.monotonic()
    results = throughput.run_together([[sys.executable, "-c", child]] * 2, {}, tmp_path, ready_timeout=60,
                                      run_timeout=60)
    assert time.monotonic() - started < 50 and [r["images"] for r in results] == [10, 10]
    assert (tmp_path / "worker-0.err").stat().st_size == 2**20
    failing = [sys.executable, "-c", "import sys; sys.stderr.write('it broke'); sys.exit(3)"]
    (tmp_path / "failing").mkdir()
    with pytest.raises(RuntimeError, match="failed \\(exit 3\\): it broke"):
        throughput.run_together([failing], {}, tmp_path / "failing", ready_timeout=10, run_timeout=10)


def test_the_pil_baseline_gets_the_loader_processes_of_a_study_trial():
    throughput = load_benchmark("gpu_throughput")
    gpu_trials = [phase["resources"]["cpu"]
                  for path in sorted((ROOT / "platform" / "studies").glob("*.yaml"))
                  for phase in yaml.safe_load(path.read_text()).get("phases", {}).values()
                  if isinstance(phase, dict) and phase.get("resources", {}).get("gpu", 0) > 0]
    assert gpu_trials and set(gpu_trials) == {throughput.STUDY_TRIAL_CPUS}
    assert throughput.parse_args([]).workers == 1  # 2 CPUs: one for the training process, 1 loader process
    assert throughput.parse_args(["--trial-cpus", "16"]).workers == 8
    assert throughput.parse_args(["--workers", "5"]).workers == 5  # the flag the device check passes still wins


@pytest.mark.slow
def test_gpu_retrain_runs_in_cpu_mode_on_a_bare_machine(tmp_path, bare_env):
    """Every section runs (the loader section called a method the batch stream no longer has) and each row
    says what it ran: on a CPU the bf16 rows run fp32."""
    out = tmp_path / "retrain.json"
    done = subprocess.run([sys.executable, "benchmarks/gpu_retrain.py", "--device", "cpu", "--height", "32",
                           "--iters", "1", "--warmup", "1", "--repeats", "1", "--ids", "12", "--ids-per-batch", "4",
                           "--instances", "2", "--classes", "12", "--workers", "0", "--trial-iters", "2",
                           "--only", "retrain_on_device", "through_loader", "retrain_trial", "--data-dir",
                           str(tmp_path / "data"), "--json", str(out)], cwd=ROOT, env=bare_env, capture_output=True,
                          text=True, timeout=1200)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    figures = json.loads(out.read_text())
    assert "error" not in figures["through_loader"] and figures["through_loader"]["train_step"]["images_per_s"] > 0
    assert figures["through_loader"]["train_step"]["variant"] == "fp32"
    assert figures["retrain_on_device"]["bf16+cl"]["runs"] == "fp32 (amp asked: autocast is CUDA-only)"
    table = "\n".join(figures["table"])
    assert "retrain fp32 via loader (0 w)" in table and "bf16+cl via loader" not in table
    assert figures["retrain_trial"]["ok"]
    assert "warning: no rank lists or activation maps drawn" in done.stderr  # no matplotlib there: a warning
