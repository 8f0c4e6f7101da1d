"""Export of a trained smoke checkpoint to every format, checked in each format's own runtime."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

from trials import export
from trials.deploy.formats import FORMATS, load_runner

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def query_folder(root: Path) -> Path:
    return root / "Market-1501-v15.09.15" / "query"


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "trials.export", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)


@pytest.fixture(scope="module")
def exported(smoke_checkpoint, synthetic_root, tmp_path_factory):
    """Each format exported once by the command (in-process), with real images checked."""
    out = tmp_path_factory.mktemp("exported")
    for fmt in FORMATS:
        try:
            export.main(["--weights", str(smoke_checkpoint), "--format", fmt, "--out", str(out / fmt),
                         "--check", str(query_folder(synthetic_root))])
        except SystemExit as stop:
            raise AssertionError(f"export to {fmt} exited with {stop.code}") from None
    return out


@pytest.mark.parametrize("fmt", FORMATS)
def test_each_format_passes_parity_on_random_and_real_images(exported, synthetic_root, fmt):
    parity = json.loads((exported / fmt / "parity.json").read_text())
    images = len(list(query_folder(synthetic_root).glob("*.jpg")))
    assert parity["passed"] and parity["real_images"] == images > 0
    assert parity["features_compared"] == images + 6  # plus random batches of 1 and 5
    assert parity["max_delta"] <= 1e-4 and parity["min_cosine"] >= 0.9999
    pre = json.loads((exported / fmt / "preprocessing.json").read_text())
    assert (pre["height"], pre["width"]) == (64, 32)  # the smoke checkpoint's trained size, from its config
    assert pre["channel_order"] == "RGB" and pre["l2_normalised"] is False and len(pre["mean"]) == 3


@pytest.mark.parametrize("fmt", FORMATS)
def test_the_batch_dimension_is_dynamic_and_features_differ_per_image(exported, fmt):
    from trials.deploy.formats import FILE_NAMES

    run = load_runner(exported / fmt / FILE_NAMES[fmt], fmt)
    batch = np.random.default_rng(0).standard_normal((9, 3, 64, 32)).astype(np.float32)
    features = run(batch)
    assert features.shape == (9, 768)
    assert np.abs(features - features[0]).max() > 1e-3  # not one output for every input
    np.testing.assert_allclose(run(batch[:1]), features[:1], atol=1e-4)


def test_a_broken_onnx_graph_fails_parity_with_exit_2_naming_the_worst_image(exported, smoke_checkpoint,
                                                                          synthetic_root, tmp_path):
    model = onnx.load(str(exported / "onnx" / "model.onnx"))
    weights = max(model.graph.initializer, key=lambda t: np.prod(t.dims))  # the largest weight tensor
    array = onnx.numpy_helper.to_array(weights).copy()
    weights.CopyFrom(onnx.numpy_helper.from_array(array * 1.05, weights.name))
    (tmp_path / "onnx").mkdir()
    onnx.save(model, str(tmp_path / "onnx" / "model.onnx"))
    result = run_cli("--weights", str(smoke_checkpoint), "--format", "onnx", "--out", str(tmp_path / "onnx"),
                     "--check", str(query_folder(synthetic_root)), "--check-only")
    assert result.returncode == 2, result.stderr[-2000:]
    assert "parity FAILED" in result.stderr and "worst input" in result.stderr
    assert "Traceback" not in result.stderr
    parity = json.loads((tmp_path / "onnx" / "parity.json").read_text())
    assert not parity["passed"] and parity["worst"]["input"] in result.stderr
    assert parity["max_delta"] > 1e-4


def test_misuse_is_one_error_line_and_exit_2(smoke_checkpoint, tmp_path):
    missing = run_cli("--weights", str(tmp_path / "nope.pt"), "--format", "onnx", "--out", str(tmp_path / "o"))
    assert missing.returncode == 2 and "error: --weights" in missing.stderr and "nope.pt" in missing.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    no_images = run_cli("--weights", str(smoke_checkpoint), "--format", "pt2", "--out", str(tmp_path / "o"),
                        "--check", str(empty))
    assert no_images.returncode == 2 and "error: --check" in no_images.stderr
    assert "Traceback" not in missing.stderr + no_images.stderr
    assert not (tmp_path / "o").exists()  # nothing exported before the input was checked


def test_l2_normalisation_inside_the_graph_is_recorded(smoke_checkpoint, tmp_path):
    from trials.deploy.formats import FILE_NAMES

    export.main(["--weights", str(smoke_checkpoint), "--format", "pt2", "--out", str(tmp_path), "--l2-normalise"])
    assert json.loads((tmp_path / "preprocessing.json").read_text())["l2_normalised"] is True
    assert json.loads((tmp_path / "parity.json").read_text())["passed"]
    features = load_runner(tmp_path / FILE_NAMES["pt2"], "pt2")(np.random.default_rng(1).standard_normal(
        (3, 3, 64, 32)).astype(np.float32))
    np.testing.assert_allclose(np.linalg.norm(features, axis=1), 1.0, atol=1e-5)
