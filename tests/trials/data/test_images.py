"""ImageDataset: (image, pid, camid, index) items, and a clear error for unreadable files."""

from pathlib import Path

import pytest
import torch
from PIL import Image

from trials.data import DatasetError, ImageDataset, Sample, build_transforms


def test_items_are_image_pid_camid_index(tmp_path: Path):
    paths = []
    for i, mode in enumerate(["RGB", "L", "RGBA"]):
        path = tmp_path / f"{i}.png"
        Image.new(mode, (20, 40)).save(path)
        paths.append(str(path))
    samples = [Sample(p, pid, cam) for p, pid, cam in zip(paths, [3, 3, 8], [0, 1, 2], strict=True)]
    data = ImageDataset(samples, build_transforms(64, 32, train=False))
    assert len(data) == 3 and data.pids == [3, 3, 8]
    for index in range(3):
        image, pid, camid, got = data[index]
        assert image.shape == (3, 64, 32) and image.dtype == torch.float32
        assert (pid, camid, got) == (samples[index].pid, samples[index].camid, index)
    raw = ImageDataset(samples)[1][0]
    assert isinstance(raw, Image.Image) and raw.mode == "RGB"  # grayscale converted like torchvision does


def test_truncated_image_error_names_the_file(tmp_path: Path):
    good = tmp_path / "good.jpg"
    Image.effect_noise((64, 128), 40).convert("RGB").save(good, quality=95)
    bad = tmp_path / "0001_c1s1_000001_01.jpg"
    bad.write_bytes(good.read_bytes()[:600])
    with pytest.raises(DatasetError, match="cannot read image") as err:
        ImageDataset([Sample(str(bad), 1, 0)])[0]
    assert str(bad) in str(err.value)


def test_missing_or_non_image_file_error_names_the_file(tmp_path: Path):
    text = tmp_path / "notes.jpg"
    text.write_text("not an image")
    for path in (text, tmp_path / "gone.jpg"):
        with pytest.raises(DatasetError) as err:
            ImageDataset([Sample(str(path), 0, 0)])[0]
        assert str(path) in str(err.value)
