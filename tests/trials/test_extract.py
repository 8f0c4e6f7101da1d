"""Feature extraction: the API and the command give the features the trials score with."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import spaces
from trials.data import loaders
from trials.data.datasets import load_market1501
from trials.deploy import DeployError, FeatureExtractor
from trials.evaluation.features import extract_features

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def test_the_command_matches_the_trials_features_on_the_query_folder(smoke_checkpoint, synthetic_root, tmp_path):
    out = tmp_path / "query.npz"
    folder = synthetic_root / "Market-1501-v15.09.15" / "query"
    result = subprocess.run([sys.executable, "-m", "trials.extract", "--weights", str(smoke_checkpoint),
                             "--images", str(folder), "--out", str(out), "--batch-size", "7"], cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    saved = np.load(out)
    by_path = dict(zip(saved["paths"].tolist(), saved["features"], strict=True))
    assert saved["features"].shape == (len(list(folder.glob("*.jpg"))), 768)
    settings = json.loads(str(saved["preprocessing"]))
    assert (settings["height"], settings["width"]) == (64, 32) and settings["flip_average"] is False

    model = spaces.build_from_checkpoint(smoke_checkpoint)
    query = load_market1501(synthetic_root).query  # the trials' reading of the same folder (junk dropped)
    reference, _, _ = extract_features(model, loaders.test_loader(query, (64, 32), 16, 0, False), "cpu")
    assert len(query) > 0
    for sample, feature in zip(query, reference.numpy(), strict=True):
        np.testing.assert_allclose(by_path[sample.path], feature, atol=1e-5, rtol=1e-5)


def test_the_api_takes_paths_pil_images_and_arrays_and_flips_and_normalises(smoke_checkpoint, synthetic_root):
    paths = sorted((synthetic_root / "Market-1501-v15.09.15" / "query").glob("*.jpg"))[:5]
    extractor = FeatureExtractor(smoke_checkpoint, device="cpu", batch_size=2)
    from_paths = extractor(paths)
    images = [Image.open(p) for p in paths]
    np.testing.assert_allclose(extractor(images), from_paths, atol=1e-5, rtol=1e-5)
    arrays = [np.asarray(i.convert("RGB")) for i in images]
    np.testing.assert_allclose(extractor(arrays), from_paths, atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(extractor(paths[0])[0], from_paths[0], atol=1e-5, rtol=1e-5)  # one image alone

    flipped = FeatureExtractor(smoke_checkpoint, device="cpu", flip=True, normalise=True)(paths)
    mirrored = extractor([i.transpose(Image.Transpose.FLIP_LEFT_RIGHT) for i in images])
    expected = torch.nn.functional.normalize(torch.from_numpy((from_paths + mirrored) / 2), dim=1).numpy()
    np.testing.assert_allclose(np.linalg.norm(flipped, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(flipped, expected, atol=2e-3)  # resize and flip commute up to resampling


def test_bad_inputs_are_named(smoke_checkpoint, tmp_path):
    extractor = FeatureExtractor(smoke_checkpoint, device="cpu")
    with pytest.raises(DeployError, match="uint8"):
        extractor([np.zeros((8, 8, 3), dtype=np.float32)])
    listing = tmp_path / "list.txt"
    listing.write_text("missing.jpg\n")
    result = subprocess.run([sys.executable, "-m", "trials.extract", "--weights", str(smoke_checkpoint),
                             "--images", str(listing), "--out", str(tmp_path / "f.npz")], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "line 1: missing.jpg" in result.stderr and "Traceback" not in result.stderr
