"""The serving client and the served model's input check, without a server (the served champion end to end:
tests/trials/test_registry.py and the README's deployment section)."""

import io
import json
import subprocess
import sys
import urllib.error
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from trials.deploy import DeployError, Preprocessing
from trials.deploy.client import encode, image_paths, main, preprocess, read_preprocessing, server_message
from trials.deploy.msinet_serving import input_range, range_problem

ROOT = Path(__file__).resolve().parents[2]


def test_the_client_preprocesses_exactly_as_the_trials(synthetic_root, tmp_path):
    """Decode, resize, scale and normalise from preprocessing.json alone: bit-identical to the trials' test
    transform, so served features can equal `trials.extract`'s."""
    preprocessing = Preprocessing(64, 32)
    path = preprocessing.write(tmp_path / "preprocessing.json")
    settings = read_preprocessing(path)
    transform = preprocessing.transform()
    images = image_paths([str(synthetic_root / "Market-1501-v15.09.15" / "query")])[:5]
    for image_path in images:
        image = Image.open(image_path)
        ours = preprocess(image, settings)
        assert ours.dtype == np.float32 and ours.shape == (3, 64, 32)
        np.testing.assert_array_equal(ours, transform(image.convert("RGB")).numpy())
    big = Image.new("RGB", (300, 500), (255, 0, 10))
    low, high = input_range(settings)
    assert range_problem(preprocess(big, settings)[None], low, high) is None  # extremes stay in range


def test_a_batch_travels_as_parquet_far_smaller_than_json(synthetic_root):
    """16 real query images: exact float32 values, a fraction of the JSON numbers' size (a normalised channel
    takes at most 256 values, which Parquet's dictionary encoding stores once)."""
    settings = {"height": 64, "width": 32, "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}
    images = image_paths([str(synthetic_root / "Market-1501-v15.09.15" / "query")])[:16]
    batch = np.stack([preprocess(Image.open(path), settings) for path in images])
    body = encode(batch)
    table = pd.read_parquet(io.BytesIO(body))
    np.testing.assert_array_equal(np.vstack(table["images"].tolist()).reshape(batch.shape), batch)
    as_json = len(json.dumps({"inputs": batch.tolist()}))
    assert len(body) < as_json / 8, (len(body), as_json)


def test_the_served_model_refuses_what_is_not_a_normalised_image():
    low, high = input_range({"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]})
    assert low[0] == pytest.approx(-2.1179, abs=1e-4) and high[2] == pytest.approx(2.64, abs=1e-3)
    normalised = np.random.default_rng(1).uniform(-1.8, 2.2, size=(2, 3, 8, 4)).astype(np.float32)
    assert range_problem(normalised, low, high) is None
    raw = np.full((2, 3, 8, 4), 128.0, dtype=np.float32)
    problem = range_problem(raw, low, high)
    assert "outside the normalised range (raw 0-255 pixels?)" in problem and "channel R spans 128.000" in problem
    assert "preprocessing.json" in problem
    scaled_only = np.full((1, 3, 8, 4), 0.5, dtype=np.float32)  # in [0, 1] but not normalised: plausible, passes
    assert range_problem(scaled_only, low, high) is None
    normalised[0, 1, 0, 0] = np.nan
    assert "NaN" in range_problem(normalised, low, high)


@pytest.mark.slow
def test_bad_input_is_one_error_line_and_exit_2(tmp_path, synthetic_root, capsys):
    images = str(synthetic_root / "Market-1501-v15.09.15" / "query")
    (tmp_path / "partial.json").write_text(json.dumps({"height": 64, "width": 32}))
    good = str(Preprocessing(64, 32).write(tmp_path / "p.json"))
    cases = [([images, "--preprocessing", str(tmp_path / "missing.json")], "cannot read it"),
             ([images, "--preprocessing", str(tmp_path / "partial.json")], "missing mean, std"),
             ([str(tmp_path / "nothing"), "--preprocessing", good], "IMAGES"),
             ([images, "--preprocessing", good, "--out", str(tmp_path / "f.csv")], "ending in .npz"),
             ([images, "--preprocessing", good, "--wait", "1"], "no scoring server answered")]
    for args, message in cases:
        with pytest.raises(SystemExit) as stopped:
            main([*args, "--url", "http://127.0.0.1:9"])
        error = capsys.readouterr().err
        assert stopped.value.code == 2 and error.startswith("error: ") and message in error, error
    done = subprocess.run([sys.executable, "-m", "trials.deploy.client", images, "--preprocessing", good, "--url",
                           "http://127.0.0.1:9"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "no answer from http://127.0.0.1:9" in done.stderr
    assert "Traceback" not in done.stderr


def test_the_servers_refusal_is_shown_without_the_echo_of_the_batch():
    body = json.dumps({"error_code": "INVALID_PARAMETER_VALUE",
                       "message": "Failed to predict data '[[1.0, 2.0]]'. \nError: inputs outside the range"})
    error = urllib.error.HTTPError("http://x/invocations", 400, "Bad Request", {}, io.BytesIO(body.encode()))
    assert server_message(error) == "inputs outside the range"
    with pytest.raises(DeployError, match="--preprocessing"):
        read_preprocessing(Path("/nonexistent/preprocessing.json"))
