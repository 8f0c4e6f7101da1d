"""Image transforms of the MSINet recipe (docs/method.md, Retraining).

Train: resize, horizontal flip, pad + random crop, then colour jitter (0.4, 0.4, 0.3, 0) when training
for cross-domain transfer, tensor + ImageNet normalisation, then random erasing (p 0.5) in-domain.
Test: resize, tensor + normalisation.

Random erasing is the authors' variant (`RandomErasing` below), not torchvision's: area uniform in
[0.02, 0.4], aspect ratio uniform in [0.3, 1/0.3], up to 100 tries, the box filled with the CIFAR mean colour
written into the normalised tensor. torchvision's (area up to 0.33, log-uniform aspect, fill 0) stays
available as `erasing="torchvision"`.

The padding is the recipe's 10 pixels at its 256-pixel height and scales with the height otherwise (2 at
64, 1 at 32): an absolute 10 pixels would shift a 64x32 smoke-scale image by up to a third of its width,
which keeps small networks from learning anything on synthetic data. `padding=10` restores the absolute value.
"""

from __future__ import annotations

import math

import torch
from torchvision import transforms as T

from trials.config import ERASINGS

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
ERASING_FILL = (0.4914, 0.4822, 0.4465)


class RandomErasing:
    """Erase one random box of a (C, H, W) tensor with probability `p` (Zhong et al., AAAI 2020), as the
    MSINet authors run it: the box's area is uniform in [sl, sh] of the image, its aspect ratio uniform in
    [r1, 1/r1]; a draw that does not fit strictly inside the image is retried, up to `tries` times, after
    which the image stays whole. The fill values go into the (already normalised) tensor as they are.

    Draws come from torch's global RNG, so the per-item seeding of the loaders makes them reproducible.
    """

    def __init__(self, p: float = 0.5, sl: float = 0.02, sh: float = 0.4, r1: float = 0.3, tries: int = 100,
                 fill: tuple[float, ...] = ERASING_FILL):
        self.p, self.sl, self.sh, self.r1, self.tries, self.fill = p, sl, sh, r1, tries, fill

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        if float(torch.rand(())) >= self.p:
            return image
        _, height, width = image.shape
        for _ in range(self.tries):
            area = height * width * _uniform(self.sl, self.sh)
            aspect = _uniform(self.r1, 1 / self.r1)
            h = int(round(math.sqrt(area * aspect)))
            w = int(round(math.sqrt(area / aspect)))
            if w < width and h < height:
                top = int(torch.randint(0, height - h + 1, ()))
                left = int(torch.randint(0, width - w + 1, ()))
                for channel in range(image.shape[0]):
                    image[channel, top:top + h, left:left + w] = self.fill[channel % len(self.fill)]
                return image
        return image

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(p={self.p}, area=[{self.sl}, {self.sh}], aspect=[{self.r1}, "
                f"{1 / self.r1:.3f}], tries={self.tries}, fill={self.fill})")


def _uniform(low: float, high: float) -> float:
    return low + (high - low) * float(torch.rand(()))


def crop_padding(height: int) -> int:
    """Pad before the random crop: 10 pixels at height 256, proportional to the height, at least 1."""
    return max(1, round(10 * height / 256))


def build_transforms(height: int, width: int, train: bool, cross_domain: bool = False, erasing: str = "authors",
                     padding: int | None = None) -> T.Compose:
    """PIL RGB image -> normalised float tensor (3, height, width)."""
    size = (height, width)
    normalise = [T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
    if not train:
        return T.Compose([T.Resize(size), *normalise])
    pad = crop_padding(height) if padding is None else padding
    steps = [T.Resize(size), T.RandomHorizontalFlip(p=0.5), T.Pad(pad), T.RandomCrop(size)]
    if cross_domain:
        steps.append(T.ColorJitter(brightness=0.4, contrast=0.4, saturation=0.3, hue=0))
    steps.extend(normalise)
    if not cross_domain:
        if erasing not in ERASINGS:
            raise ValueError(f"erasing: expected one of {', '.join(ERASINGS)}, got {erasing!r}")
        steps.append(RandomErasing(p=0.5) if erasing == "authors" else T.RandomErasing(p=0.5, value=0))
    return T.Compose(steps)
