"""The throughput benchmark keeps working: its CPU mode runs every section in small sizes and writes the
JSON keys the GPU figures are read from."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_throughput_runs_in_cpu_mode(tmp_path):
    out = tmp_path / "throughput.json"
    done = subprocess.run([sys.executable, "benchmarks/gpu_throughput.py", "--device", "cpu", "--height", "32",
                           "--classes", "12", "--ids", "12", "--iters", "1", "--warmup", "1", "--repeats", "1",
                           "--workers", "0", "--ids-per-batch", "4", "--instances", "2", "--variants", "pil_fp32",
                           "device", "--packing", "1", "2", "--data-dir", str(tmp_path / "data"), "--json", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stderr[-3000:]
    figures = json.loads(out.read_text())
    for key in ("retrain_images_per_s", "search_images_per_s"):
        assert set(figures[key]) == {"pil_fp32", "device"} and all(v > 0 for v in figures[key].values())
    assert set(figures["packed_retrain_images_per_s"]) == {"1", "2"}
    assert figures["device"] == "cpu" and figures["torch"] == __import__("torch").__version__
    assert "retrain/device" in figures["peak_mib"]
