"""The recipe's training augmentation on a whole batch of uint8 images at once, on any device.

The same steps and distributions as the PIL path (`trials.data.transforms`): horizontal flip (p 0.5), pad and
random crop, colour jitter (brightness 0.4, contrast 0.4, saturation 0.3, in a random order per image) for
cross-domain training, ImageNet normalisation, and the authors' random erasing in-domain. Images arrive
already resized to the training size: the recipe resizes first, so decoding once at that size is exact.

Every random number of an image comes from a generator seeded with that image's item seed (the one the
loaders derive from seed, epoch and position), drawn on the CPU; only the pixel work runs on the device. So a
batch is reproducible and a resumed trial continues exactly. The draws of a batch travel to the device as one
small matrix in one copy (pinned and asynchronous on CUDA); the constants (normalisation, erasing fill, luma
weights, pixel grids) are built on the device once; the pixel work has static shapes and no host read-back.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from trials.data.transforms import ERASING_FILL, IMAGENET_MEAN, IMAGENET_STD, crop_padding

JITTER = {"brightness": 0.4, "contrast": 0.4, "saturation": 0.3}
_GRAY = (0.299, 0.587, 0.114)  # ITU-R 601 luma, as PIL's conversion to "L" (the PIL path's ColorJitter) weighs


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


class BatchAugment:
    """The augmentation of one trial's batches (one size, one device), with its constants kept on the device.

    `draws(seeds, index)` packs a batch's random choices (and, for the resident loader, the rows to gather)
    into one float64 matrix in host memory, pinned when the device is CUDA; `apply` runs the pixel work on
    the device from that matrix once copied. Columns: the extra leading ones, then flip, top, left, then
    (cross-domain) three jitter factors and their order, or (in-domain) the erasing box (top, left, h, w).
    float64 holds every integer column exactly.
    """

    def __init__(self, height: int, width: int, device: torch.device, cross_domain: bool,
                 erasing: str | None = "authors", padding: int | None = None):
        # Cross-domain training erases nothing in either data path (trials.data.transforms), so any `erasing`
        # value is accepted there; in-domain the device path draws the authors' boxes only.
        if not cross_domain and erasing not in (None, "authors"):
            raise ValueError(f"erasing: the device data path implements the authors' erasing only, got {erasing!r}")
        self.height, self.width, self.device, self.cross_domain = height, width, device, cross_domain
        self.erase = erasing is not None and not cross_domain
        self.pad = crop_padding(height) if padding is None else padding
        self.pinned = device.type == "cuda"

        def const(values) -> torch.Tensor:
            return torch.tensor(values, dtype=torch.float32, device=device)[None, :, None, None]

        self.mean, self.std = const(IMAGENET_MEAN), const(IMAGENET_STD)
        self.fill, self.gray = const(ERASING_FILL), const(_GRAY)
        self.rows = torch.arange(height, device=device)
        self.cols = torch.arange(width, device=device)

    def draws(self, seeds: list[int], *leading: torch.Tensor) -> torch.Tensor:
        """(B, K) float64 on the host: `leading` columns (e.g. gather indices), then the random choices."""
        params = draw_params(seeds, self.height, self.width, self.pad, self.cross_domain, self.erase)
        parts = [*(c[:, None] for c in leading), params["flip"][:, None], params["top"][:, None],
                 params["left"][:, None]]
        parts += [params["jitter"], params["order"]] if self.cross_domain else []
        parts += [params["box"]] if self.erase else []
        out = torch.empty(len(seeds), sum(p.shape[1] for p in parts), dtype=torch.float64, pin_memory=self.pinned)
        torch.cat([p.double() for p in parts], dim=1, out=out)
        return out

    def to_device(self, draws: torch.Tensor) -> torch.Tensor:
        """The one copy of a batch's draws (asynchronous from pinned memory on CUDA)."""
        return draws.to(self.device, non_blocking=True)

    def __call__(self, images: torch.Tensor, seeds: list[int]) -> torch.Tensor:
        return self.apply(images, self.to_device(self.draws(seeds)))

    def apply(self, images: torch.Tensor, draws: torch.Tensor) -> torch.Tensor:
        """uint8 (B, 3, H, W) on the device -> normalised float32, from `draws` already on the device (its
        last columns are the random choices; leading ones are ignored)."""
        batch = images.shape[0]
        width = 3 + (6 if self.cross_domain else 0) + (4 if self.erase else 0)
        d = draws[:, draws.shape[1] - width:]
        x = torch.where(d[:, 0, None, None, None] > 0.5, images.flip(-1), images)
        if self.pad:
            x = F.pad(x, (self.pad, self.pad, self.pad, self.pad))  # zeros, like T.Pad's default fill
            rows = d[:, 1, None].long() + self.rows
            cols = d[:, 2, None].long() + self.cols
            x = x[torch.arange(batch, device=x.device)[:, None, None], :, rows[:, :, None], cols[:, None, :]]
            x = x.permute(0, 3, 1, 2)
        x = x.float() / 255
        if self.cross_domain:
            x = self._jitter(x, d[:, 3:6].float(), d[:, 6:9].long())
        x = (x - self.mean) / self.std
        if self.erase:
            top, left, h, w = (d[:, 3 + i, None, None, None].long() for i in range(4))
            ys, xs = self.rows[None, None, :, None], self.cols[None, None, None, :]
            inside = (ys >= top) & (ys < top + h) & (xs >= left) & (xs < left + w)
            x = torch.where(inside, self.fill, x)
        return x.contiguous()

    def _jitter(self, x: torch.Tensor, factors: torch.Tensor, orders: torch.Tensor) -> torch.Tensor:
        """Brightness, contrast, saturation (torchvision's blend formulas), each image in its own order: at
        step j every image blends towards its own reference, 0 (brightness), its mean grey (contrast) or its
        grey image (saturation), so the whole batch is one expression per step."""
        for step in range(3):
            op = orders[:, step, None, None, None]
            f = factors.gather(1, orders[:, step, None])[:, :, None, None]
            gray = (x * self.gray).sum(1, keepdim=True)
            reference = torch.where(op == 0, torch.zeros_like(gray),
                                    torch.where(op == 1, gray.mean(dim=(2, 3), keepdim=True), gray))
            x = (f * x + (1 - f) * reference).clamp(0, 1)
        return x


def augment_batch(images: torch.Tensor, seeds: list[int], cross_domain: bool, erasing: str | None = "authors",
                  padding: int | None = None) -> torch.Tensor:
    """uint8 (B, 3, H, W) -> normalised float32 (B, 3, H, W), augmented as the training recipe does (one call;
    a loader keeps a `BatchAugment` instead, so its constants are built once)."""
    return BatchAugment(images.shape[2], images.shape[3], images.device, cross_domain, erasing, padding)(images, seeds)
