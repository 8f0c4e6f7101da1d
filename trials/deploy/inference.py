"""The inference-mode network of a checkpoint and the preprocessing it was trained with.

The preprocessing travels as data (a JSON beside every exported graph, the `preprocessing` array of an
extraction) so that a consumer applies resize and normalisation exactly once: the graphs themselves take
normalised tensors and apply none of it.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

import spaces
from trials.data.transforms import IMAGENET_MEAN, IMAGENET_STD, build_transforms


class DeployError(ValueError):
    """Unusable input to export or extraction; the message names the file or value."""


@dataclass(frozen=True)
class Preprocessing:
    """What a consumer does to an image before the graph: decode as RGB, resize to (height, width)
    (bilinear, antialiased, as torchvision's Resize on PIL images), scale to [0, 1], subtract mean, divide
    by std, lay out as NCHW float32. ``l2_normalised``: whether the graph's output is already unit length."""

    height: int
    width: int
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    channel_order: str = "RGB"
    layout: str = "NCHW"
    dtype: str = "float32"
    pixel_scale: str = "divide by 255, then (x - mean) / std"
    resize: str = "bilinear, antialiased, to (height, width)"
    l2_normalised: bool = False
    feature: str = "concat(global 512, part 256): 768-d"
    feature_dim: int = 768

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def write(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        return path

    def transform(self):
        """PIL RGB image -> normalised (3, height, width) tensor: the trials' own test transform."""
        return build_transforms(self.height, self.width, train=False)


def trained_size(checkpoint: dict[str, Any]) -> tuple[int, int]:
    """(height, width) from the config a retrain stored in its checkpoint; the recipe's size otherwise."""
    vehicle = bool(checkpoint.get("vehicle", False))
    config = checkpoint.get("config") or {}
    height = int(config.get("height") or 256)
    width = config.get("width")
    return height, int(width) if width else (height if vehicle else height // 2)


def load_inference_model(weights: str | Path, image_size: tuple[int, int] | None = None,
                         l2_normalise: bool = False) -> tuple[torch.nn.Module, Preprocessing]:
    """(eval-mode model on the CPU returning (B, 768) features, its preprocessing) for one of our
    checkpoints (`checkpoint/model.pt` of a retrain, or anything `spaces.save_checkpoint` wrote)."""
    path = Path(weights)
    if not path.is_file():
        raise DeployError(f"--weights {weights}: no such file")
    try:
        checkpoint = spaces.load_checkpoint(path)
    except Exception as error:  # noqa: BLE001 - torch reports unreadable files with many types
        raise DeployError(f"--weights {weights}: not a readable torch checkpoint ({error})") from None
    if not isinstance(checkpoint, dict) or "genotype" not in checkpoint:
        raise DeployError(f"--weights {weights}: not a checkpoint of this project (no genotype inside); "
                          "use checkpoint/model.pt of a retrain or a file written by spaces.save_checkpoint")
    try:
        model = spaces.build_from_checkpoint(path)
    except ValueError as error:
        raise DeployError(f"--weights {weights}: {error}") from None
    height, width = image_size or trained_size(checkpoint)
    if height < 32 or width < 16:
        raise DeployError(f"image size {height}x{width}: expected at least 32x16 (the network downsamples 16x)")
    feature = ("BN-neck " if model.test_neck else "") + Preprocessing.feature
    model = L2Normalised(model) if l2_normalise else model
    return model.eval(), Preprocessing(height, width, l2_normalised=l2_normalise, feature=feature)


class L2Normalised(torch.nn.Module):
    """The network with its features scaled to unit length inside the graph (cosine = dot product)."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.normalize(self.model(images), dim=1)
