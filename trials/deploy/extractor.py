"""ReID features for images: weights loaded once, then any number of calls on paths, PIL images or arrays,
in batches, with optional flip averaging and L2 normalisation. The preprocessing is the trials' own test
transform at the checkpoint's trained size, so features match the ones the trials were scored with."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from trials.data.images import read_image
from trials.deploy.inference import DeployError, load_inference_model
from trials.runtime.device import resolve_device

ImageLike = str | Path | Image.Image | np.ndarray


def to_pil(item: ImageLike) -> Image.Image:
    """A path (decoded as RGB), a PIL image (converted to RGB) or an HxWx3 uint8 RGB array (HxW: grey)."""
    if isinstance(item, str | Path):
        return read_image(str(item))
    if isinstance(item, Image.Image):
        return item.convert("RGB")
    if isinstance(item, np.ndarray):
        if item.dtype != np.uint8 or item.ndim not in (2, 3) or (item.ndim == 3 and item.shape[2] not in (3, 4)):
            raise DeployError(f"image array: expected HxWx3 (RGB) or HxW uint8, got {item.dtype} of shape "
                              f"{list(item.shape)}")
        return Image.fromarray(item).convert("RGB")
    raise DeployError(f"image: expected a path, a PIL image or a uint8 array, got {type(item).__name__}")


class FeatureExtractor:
    """``FeatureExtractor("runs/.../checkpoint/model.pt")(paths) -> (N, 768) float32``.

    ``image_size``: (height, width), default the size the checkpoint was trained at. ``flip``: average each
    feature with that of the horizontally flipped image. ``normalise``: L2-normalise the (averaged) feature.
    """

    def __init__(self, weights: str | Path, device: str = "auto", batch_size: int = 64,
                 image_size: tuple[int, int] | None = None, flip: bool = False, normalise: bool = False):
        if batch_size < 1:
            raise DeployError(f"batch size: expected an integer >= 1, got {batch_size}")
        self.device = resolve_device(device)  # a device that is not there: said before the weights are read
        self.model, self.preprocessing = load_inference_model(weights, image_size)
        self.model.to(self.device)
        self.transform = self.preprocessing.transform()
        self.batch_size, self.flip, self.normalise = batch_size, flip, normalise
        self.weights = str(weights)

    @property
    def settings(self) -> dict[str, Any]:
        """Everything that shaped the features: the preprocessing, flip averaging, normalisation."""
        return {**self.preprocessing.to_dict(), "flip_average": self.flip, "l2_normalised": self.normalise,
                "weights": self.weights}

    def __call__(self, images: Iterable[ImageLike]) -> np.ndarray:
        chunks = [self.batch_features(batch) for batch in _chunks(images, self.batch_size)]
        if not chunks:
            return np.zeros((0, self.preprocessing.feature_dim), dtype=np.float32)
        return np.concatenate(chunks)

    def batch_features(self, images: Sequence[ImageLike]) -> np.ndarray:
        """Features of one batch, on the extractor's device."""
        batch = torch.stack([self.transform(to_pil(item)) for item in images]).to(self.device)
        with torch.no_grad():
            features = self.model(batch).float()
            if self.flip:
                features = (features + self.model(torch.flip(batch, dims=[3])).float()) / 2
            if self.normalise:
                features = torch.nn.functional.normalize(features, dim=1)
        return features.cpu().numpy()


def _chunks(items: Iterable[ImageLike], size: int) -> Iterator[list[ImageLike]]:
    if isinstance(items, str | Path | Image.Image | np.ndarray) and not (
            isinstance(items, np.ndarray) and items.ndim == 4):
        items = [items]  # one image
    batch: list[ImageLike] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
