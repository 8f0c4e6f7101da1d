"""A device-resident data path: every image of a split decoded once, at the training size, and held as uint8
on the device (or in pinned host memory), so a trial packed beside others on one GPU needs no decoding
workers. Market-1501's training split at 256x128 is about 1.3 GB of uint8.

`ResidentLoader` yields the batches `train_loader` yields: (images, pids, camids, indices), the same PK
order and the same per-item seeds (from `SeededItems`), augmented on the device by `BatchAugment`. Images are
held once per distinct file, in sorted path order, and each batch gathers its rows by index: a list in
another order (another seed's halving order) or with a file twice reads the right image in every row. The
decoded files are also kept on local disk, keyed by a digest of the files and the size, so the next trial
on the node skips decoding.
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

from trials.data.batch_augment import BatchAugment
from trials.data.datasets import Sample
from trials.data.images import read_image
from trials.data.loaders import SeededItems
from trials.data.sampler import PKSampler
from trials.runtime.device import trial_cpus

CACHE_LAYOUT = "distinct files in sorted path order, v2"  # part of the digest: older caches are not misread


def split_digest(paths: Sequence[str], size: tuple[int, int]) -> str:
    """Changes when a file, its size or modification time, the training size or the cache layout changes."""
    digest = hashlib.sha256(f"{CACHE_LAYOUT}\0{size[0]}x{size[1]}".encode())
    for path in paths:
        stat = os.stat(path)
        digest.update(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:20]


def decode_split(samples: Sequence[Sample], size: tuple[int, int], cache_dir: Path | None = None,
                 threads: int | None = None, pin: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """(images, rows): uint8 (M, 3, H, W), each distinct file once in sorted path order, resized exactly as
    the PIL path resizes it; and for every sample the row of its image, so `images[rows]` is the split in
    sample order. Decoded by `threads` threads (default: the trial's CPU share) straight into one
    preallocated tensor (pinned host memory with `pin`), so host memory holds the images once."""
    paths = sorted({s.path for s in samples})
    row_of = {path: row for row, path in enumerate(paths)}
    rows = torch.tensor([row_of[s.path] for s in samples], dtype=torch.long)
    shape = (len(paths), 3, *size)
    cached = Path(cache_dir) / f"{split_digest(paths, size)}.pt" if cache_dir else None
    if cached is not None and cached.is_file():
        stored = torch.load(cached, weights_only=True, mmap=True)  # pages read as they are copied
        if isinstance(stored, torch.Tensor) and tuple(stored.shape) == shape and stored.dtype == torch.uint8:
            return (torch.empty(shape, dtype=torch.uint8, pin_memory=True).copy_(stored) if pin else stored), rows
    images = torch.empty(shape, dtype=torch.uint8, pin_memory=pin)

    def decode(row: int) -> None:
        images[row].permute(1, 2, 0).numpy()[:] = np.asarray(TF.resize(read_image(paths[row]), list(size)))

    with ThreadPoolExecutor(max_workers=threads or trial_cpus()) as pool:
        list(pool.map(decode, range(len(paths))))
    if cached is not None:
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_name(f".{cached.name}.{os.getpid()}.tmp")
        torch.save(images, tmp)
        tmp.replace(cached)
    return images, rows


class ResidentLoader:
    """PK-sampled, augmented batches from a decoded split held on `device`; a drop-in for `train_loader`.

    `pinned` keeps the images in pinned host memory instead (CUDA only: on a CPU device they are on the
    device already) and copies each gathered batch asynchronously. Per batch, the sample indices, image rows
    and random draws reach the device in one copy; pids are gathered on the device."""

    def __init__(self, samples: Sequence[Sample], image_size: tuple[int, int], ids_per_batch: int, instances: int,
                 seed: int, device: torch.device, cross_domain: bool, replacement: bool = True,
                 erasing: str = "authors", padding: int | None = None, cache_dir: Path | None = None,
                 pinned: bool = False, threads: int | None = None):
        self.pinned = pinned and device.type == "cuda"
        images, self.rows = decode_split(samples, image_size, cache_dir, threads, pin=self.pinned)
        self.images = images if self.pinned else images.to(device)
        self.device = device
        self.pids = torch.tensor([s.pid for s in samples]).to(device)
        self.camids = torch.tensor([s.camid for s in samples])
        self.sampler = SeededItems(PKSampler(samples, ids_per_batch, instances, seed=seed, replacement=replacement),
                                   seed)
        self.batch_size = ids_per_batch * instances
        self.augment = BatchAugment(*image_size, device, cross_domain, erasing, padding)

    def __len__(self) -> int:
        return len(self.sampler) // self.batch_size

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]]:
        items = list(self.sampler)
        for start in range(0, len(items) - self.batch_size + 1, self.batch_size):  # drop_last, as the loader
            chunk = items[start:start + self.batch_size]
            index = torch.tensor([i for i, _ in chunk])
            rows = self.rows[index]
            draws = self.augment.to_device(self.augment.draws([s for _, s in chunk], index, rows))
            if self.pinned:
                gathered = torch.empty((len(rows), *self.images.shape[1:]), dtype=torch.uint8, pin_memory=True)
                batch = torch.index_select(self.images, 0, rows, out=gathered).to(self.device, non_blocking=True)
            else:
                batch = self.images[draws[:, 1].long()]
            yield self.augment.apply(batch, draws), self.pids[draws[:, 0].long()], self.camids[index], index
