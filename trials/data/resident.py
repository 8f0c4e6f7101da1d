"""A device-resident data path: every image of a split decoded once, at the training size, and held as uint8
on the device (or in pinned host memory), so a trial packed beside others on one GPU needs no decoding
workers. Market-1501's training split at 256x128 is about 1.3 GB of uint8.

`ResidentLoader` yields the batches `train_loader` yields: (images, pids, camids, indices), the same PK
order and the same per-item seeds (from `SeededItems`), augmented on the device by `augment_batch`. A decoded
split is also kept on local disk, keyed by a digest of its files and the size, so the next trial on the node
skips decoding.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from torchvision.transforms import functional as TF

from trials.data.batch_augment import augment_batch
from trials.data.datasets import Sample
from trials.data.images import read_image
from trials.data.loaders import SeededItems
from trials.data.sampler import PKSampler


def split_digest(samples: Sequence[Sample], size: tuple[int, int]) -> str:
    """Changes when a file, its size or modification time, or the training size changes."""
    digest = hashlib.sha256(f"{size[0]}x{size[1]}".encode())
    for path in sorted({s.path for s in samples}):
        stat = os.stat(path)
        digest.update(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:20]


def decode_split(samples: Sequence[Sample], size: tuple[int, int], cache_dir: Path | None = None,
                 threads: int | None = None) -> torch.Tensor:
    """uint8 (N, 3, H, W): each sample's image resized exactly as the PIL path resizes it."""
    cached = Path(cache_dir) / f"{split_digest(samples, size)}.pt" if cache_dir else None
    if cached is not None and cached.is_file():
        return torch.load(cached, weights_only=True)

    def decode(path: str) -> np.ndarray:
        return np.asarray(TF.resize(read_image(path), list(size)), dtype=np.uint8)

    with ThreadPoolExecutor(max_workers=threads or min(16, (os.cpu_count() or 1) * 2)) as pool:
        arrays = list(pool.map(decode, [s.path for s in samples]))
    images = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()
    if cached is not None:
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_name(f".{cached.name}.{os.getpid()}.tmp")
        torch.save(images, tmp)
        tmp.replace(cached)
    return images


class ResidentLoader:
    """PK-sampled, augmented batches from a decoded split held on `device`; a drop-in for `train_loader`."""

    def __init__(self, samples: Sequence[Sample], image_size: tuple[int, int], ids_per_batch: int, instances: int,
                 seed: int, device: torch.device, cross_domain: bool, replacement: bool = True,
                 erasing: str = "authors", padding: int | None = None, cache_dir: Path | None = None,
                 pinned: bool = False):
        images = decode_split(samples, image_size, cache_dir)
        if pinned and device.type == "cpu" and torch.cuda.is_available():
            images = images.pin_memory()
        self.images = images if pinned else images.to(device)
        self.device = device
        self.pids = torch.tensor([s.pid for s in samples])
        self.camids = torch.tensor([s.camid for s in samples])
        self.sampler = SeededItems(PKSampler(samples, ids_per_batch, instances, seed=seed, replacement=replacement),
                                   seed)
        self.batch_size = ids_per_batch * instances
        self.cross_domain, self.erasing, self.padding = cross_domain, erasing, padding

    def __len__(self) -> int:
        return len(self.sampler) // self.batch_size

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]]:
        items = list(self.sampler)
        for start in range(0, len(items) - self.batch_size + 1, self.batch_size):  # drop_last, as the loader
            chunk = items[start:start + self.batch_size]
            index = torch.tensor([i for i, _ in chunk])
            batch = self.images[index.to(self.images.device)].to(self.device, non_blocking=True)
            inputs = augment_batch(batch, [s for _, s in chunk], self.cross_domain, self.erasing, self.padding)
            yield inputs, self.pids[index], self.camids[index], index
