"""A torch Dataset over ReID samples: (image, pid, camid, index) per item."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from PIL import Image
from torch.utils.data import Dataset

from trials.data.datasets import DatasetError, Sample


def read_image(path: str) -> Image.Image:
    """The image at `path` as RGB, fully decoded; an unreadable or truncated file raises DatasetError."""
    try:
        with Image.open(path) as image:
            image.load()
            return image.convert("RGB")
    except (OSError, SyntaxError, ValueError) as exc:  # PIL reports bad files with these
        raise DatasetError(f"cannot read image {path}: {exc}") from exc


class ImageDataset(Dataset):
    """Items are (transform(image), pid, camid, index); without a transform the PIL image itself."""

    def __init__(self, samples: Sequence[Sample], transform: Callable | None = None):
        self.samples = list(samples)
        self.transform = transform

    @property
    def pids(self) -> list[int]:
        return [s.pid for s in self.samples]

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int):
        path, pid, camid = self.samples[index]
        image = read_image(path)
        if self.transform is not None:
            image = self.transform(image)
        return image, pid, camid, index
