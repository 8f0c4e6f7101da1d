"""Every image opened once before training: corrupt files named at once, good ones remembered."""

import os
from pathlib import Path

import pytest

import trials.data.integrity as integrity
from trials.data import DatasetError, load_dataset, synthesize
from trials.data.integrity import bad_images, check_dataset_images, dataset_paths


@pytest.fixture
def market(tmp_path):
    synthesize("market1501", tmp_path, ids=8, seed=5)
    return tmp_path


def test_every_corrupt_image_is_named(market):
    dataset = load_dataset("market1501", market)
    truncated, garbage = Path(dataset.gallery[3].path), Path(dataset.train[0].path)
    truncated.write_bytes(truncated.read_bytes()[:200])
    garbage.write_bytes(b"not an image at all")
    with pytest.raises(DatasetError) as caught:
        check_dataset_images(dataset)
    message = str(caught.value)
    assert "2 image(s) cannot be read" in message and str(truncated) in message and str(garbage) in message


def test_checked_images_are_not_opened_again_unless_they_change(market, tmp_path, monkeypatch):
    dataset = load_dataset("market1501", market)
    cache = tmp_path / "cache" / "image_check.json"
    opened = []
    real = integrity.read_image
    monkeypatch.setattr(integrity, "read_image", lambda path: opened.append(path) or real(path))
    assert bad_images(dataset_paths(dataset), cache) == []
    assert len(opened) == len(dataset_paths(dataset))
    opened.clear()
    assert bad_images(dataset_paths(dataset), cache) == []
    assert opened == []  # a second launch pays nothing
    changed = Path(dataset.query[0].path)
    os.utime(changed, ns=(0, 12345))
    assert bad_images(dataset_paths(dataset), cache) == []
    assert opened == [str(changed)]


@pytest.mark.slow
def test_the_driver_names_a_corrupt_image_before_any_trial_starts(market, tmp_path):
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[3]
    bad = Path(load_dataset("market1501", market).query[0].path)
    bad.write_bytes(bad.read_bytes()[:100])
    done = subprocess.run([sys.executable, "platform/launch.py", "--study", "smoke", "--data-dir", str(market),
                           "--run-dir", str(tmp_path / "runs")], cwd=root, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 2 and str(bad) in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "runs" / "launches").exists()  # nothing was started or recorded
