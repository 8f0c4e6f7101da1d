"""The recipe's training augmentation on a whole batch of uint8 images at once, on any device.

The same steps and distributions as the PIL path (`trials.data.transforms`): horizontal flip (p 0.5), pad and
random crop, colour jitter (brightness 0.4, contrast 0.4, saturation 0.3, in a random order per image) for
cross-domain training, ImageNet normalisation, and the authors' random erasing in-domain. Images arrive
already resized to the training size: the recipe resizes first, so decoding once at that size is exact.

Every random number of an image comes from a generator seeded with that image's item seed (the one the
loaders derive from seed, epoch and position), drawn on the CPU; only the pixel work runs on the device. So a
batch is reproducible and a resumed trial continues exactly.
"""

from __future__ import annotations

import itertools
import math

import torch
import torch.nn.functional as F

from trials.data.transforms import ERASING_FILL, IMAGENET_MEAN, IMAGENET_STD, crop_padding

JITTER = {"brightness": 0.4, "contrast": 0.4, "saturation": 0.3}
_GRAY = (0.299, 0.587, 0.114)  # the luma weights torchvision's tensor ops use


def draw_params(seeds: list[int], height: int, width: int, pad: int, cross_domain: bool,
                erasing: bool) -> dict[str, torch.Tensor]:
    """Per-image random choices, each image from its own seeded generator."""
    flips, tops, lefts, factors, orders, boxes = [], [], [], [], [], []
    for seed in seeds:
        g = torch.Generator().manual_seed(int(seed))
        flips.append(bool(torch.rand((), generator=g) < 0.5))
        tops.append(int(torch.randint(0, 2 * pad + 1, (), generator=g)))
        lefts.append(int(torch.randint(0, 2 * pad + 1, (), generator=g)))
        if cross_domain:
            orders.append(torch.randperm(3, generator=g).tolist())
            factors.append([1 + s * (2 * float(torch.rand((), generator=g)) - 1) for s in JITTER.values()])
        if erasing:
            boxes.append(_erasing_box(g, height, width))
    out = {"flip": torch.tensor(flips), "top": torch.tensor(tops), "left": torch.tensor(lefts)}
    if cross_domain:
        out["jitter"], out["order"] = torch.tensor(factors), torch.tensor(orders)
    if erasing:
        out["box"] = torch.tensor(boxes)  # (top, left, h, w); h == 0: not erased
    return out


def _erasing_box(g: torch.Generator, height: int, width: int, p: float = 0.5, sl: float = 0.02, sh: float = 0.4,
                 r1: float = 0.3, tries: int = 100) -> list[int]:
    """The box `transforms.RandomErasing` would erase, with the same draws (area, aspect, position)."""
    if float(torch.rand((), generator=g)) >= p:
        return [0, 0, 0, 0]
    for _ in range(tries):
        area = height * width * (sl + (sh - sl) * float(torch.rand((), generator=g)))
        aspect = r1 + (1 / r1 - r1) * float(torch.rand((), generator=g))
        h, w = int(round(math.sqrt(area * aspect))), int(round(math.sqrt(area / aspect)))
        if w < width and h < height:
            top = int(torch.randint(0, height - h + 1, (), generator=g))
            left = int(torch.randint(0, width - w + 1, (), generator=g))
            return [top, left, h, w]
    return [0, 0, 0, 0]


def augment_batch(images: torch.Tensor, seeds: list[int], cross_domain: bool, erasing: str | None = "authors",
                  padding: int | None = None) -> torch.Tensor:
    """uint8 (B, 3, H, W) -> normalised float32 (B, 3, H, W), augmented as the training recipe does."""
    if erasing not in (None, "authors"):
        raise ValueError(f"erasing: the device data path implements the authors' erasing only, got {erasing!r}")
    batch, _, height, width = images.shape
    device = images.device
    pad = crop_padding(height) if padding is None else padding
    params = draw_params(seeds, height, width, pad, cross_domain, erasing is not None and not cross_domain)
    x = images
    flip = params["flip"].to(device)
    x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    if pad:
        x = F.pad(x, (pad, pad, pad, pad))  # zeros, like T.Pad's default fill
        rows = params["top"].to(device)[:, None] + torch.arange(height, device=device)
        cols = params["left"].to(device)[:, None] + torch.arange(width, device=device)
        x = x[torch.arange(batch, device=device)[:, None, None], :, rows[:, :, None], cols[:, None, :]]
        x = x.permute(0, 3, 1, 2)
    x = x.float() / 255
    if cross_domain:
        x = _jitter(x, params["jitter"].to(device), params["order"])
    mean = torch.tensor(IMAGENET_MEAN, device=device)[None, :, None, None]
    std = torch.tensor(IMAGENET_STD, device=device)[None, :, None, None]
    x = (x - mean) / std
    if "box" in params:
        box = params["box"].to(device)
        ys = torch.arange(height, device=device)[None, :, None]
        xs = torch.arange(width, device=device)[None, None, :]
        top, left, h, w = (box[:, i, None, None] for i in range(4))
        inside = (ys >= top) & (ys < top + h) & (xs >= left) & (xs < left + w)
        fill = torch.tensor(ERASING_FILL, device=device)[None, :, None, None]
        x = torch.where(inside[:, None], fill, x)
    return x.contiguous()


def _jitter(x: torch.Tensor, factors: torch.Tensor, orders: torch.Tensor) -> torch.Tensor:
    """Brightness, contrast, saturation (torchvision's tensor formulas), each image in its own order."""
    out = torch.empty_like(x)
    for order in itertools.permutations(range(3)):
        chosen = (orders == torch.tensor(order)).all(dim=1).nonzero().flatten().to(x.device)
        if len(chosen) == 0:
            continue
        y = x[chosen]
        for op in order:
            f = factors[chosen, op][:, None, None, None]
            gray = (y * torch.tensor(_GRAY, device=x.device)[None, :, None, None]).sum(1, keepdim=True)
            if op == 0:
                y = (y * f).clamp(0, 1)
            elif op == 1:
                y = (f * y + (1 - f) * gray.mean(dim=(2, 3), keepdim=True)).clamp(0, 1)
            else:
                y = (f * y + (1 - f) * gray).clamp(0, 1)
        out[chosen] = y
    return out
