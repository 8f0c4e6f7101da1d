"""Image transforms of the MSINet recipe (DESIGN.md section 5).

Train: resize, horizontal flip, pad 10 + random crop, then colour jitter (0.4, 0.4, 0.3, 0) when training
for cross-domain transfer, tensor + ImageNet normalisation, then random erasing (p 0.5) in-domain.
Test: resize, tensor + normalisation.
"""

from __future__ import annotations

from torchvision import transforms as T

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def build_transforms(height: int, width: int, train: bool, cross_domain: bool = False) -> T.Compose:
    """PIL RGB image -> normalised float tensor (3, height, width).

    Random erasing fills with 0 after normalisation, i.e. with the ImageNet mean colour.
    """
    size = (height, width)
    normalise = [T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
    if not train:
        return T.Compose([T.Resize(size), *normalise])
    steps = [T.Resize(size), T.RandomHorizontalFlip(p=0.5), T.Pad(10), T.RandomCrop(size)]
    if cross_domain:
        steps.append(T.ColorJitter(brightness=0.4, contrast=0.4, saturation=0.3, hue=0))
    steps.extend(normalise)
    if not cross_domain:
        steps.append(T.RandomErasing(p=0.5, value=0))
    return T.Compose(steps)
