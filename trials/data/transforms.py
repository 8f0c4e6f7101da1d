"""Image transforms of the MSINet recipe (docs/method.md, Retraining).

Train: resize, horizontal flip, pad 10 + random crop, then colour jitter (0.4, 0.4, 0.3, 0) when training
for cross-domain transfer, tensor + ImageNet normalisation, then random erasing (p 0.5) in-domain.
Test: resize, tensor + normalisation.

The padding is the recipe's 10 pixels at its 256-pixel height and scales with the height otherwise (2 at
64, 1 at 32): an absolute 10 pixels would shift a 64x32 smoke-scale image by up to a third of its width,
which keeps small networks from learning anything on synthetic data.
"""

from __future__ import annotations

from torchvision import transforms as T

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def crop_padding(height: int) -> int:
    """Pad before the random crop: 10 pixels at height 256, proportional to the height, at least 1."""
    return max(1, round(10 * height / 256))


def build_transforms(height: int, width: int, train: bool, cross_domain: bool = False) -> T.Compose:
    """PIL RGB image -> normalised float tensor (3, height, width).

    Random erasing fills with 0 after normalisation, i.e. with the ImageNet mean colour.
    """
    size = (height, width)
    normalise = [T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
    if not train:
        return T.Compose([T.Resize(size), *normalise])
    steps = [T.Resize(size), T.RandomHorizontalFlip(p=0.5), T.Pad(crop_padding(height)), T.RandomCrop(size)]
    if cross_domain:
        steps.append(T.ColorJitter(brightness=0.4, contrast=0.4, saturation=0.3, hue=0))
    steps.extend(normalise)
    if not cross_domain:
        steps.append(T.RandomErasing(p=0.5, value=0))
    return T.Compose(steps)
