"""Data loaders of a trial: PK-sampled training batches and sequential test batches.

Augmentation is seeded per item from (seed, epoch, position in the epoch), so a batch is the same whatever
the number of loader processes and whether the trial was resumed: resumed runs end where uninterrupted
ones do.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from trials.data.datasets import Sample
from trials.data.images import ImageDataset
from trials.data.sampler import PKSampler
from trials.data.transforms import build_transforms


class SeededItems(Sampler):
    """Yields (index, item_seed) pairs from an index sampler; the seed fixes that item's augmentation."""

    def __init__(self, sampler: PKSampler, seed: int):
        self.sampler = sampler
        self.seed = seed
        self.epoch = 0
        self.start = 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        """The epoch to yield next; `start` skips its first items (a resumed stream), seeds unchanged."""
        self.epoch = epoch
        self.start = start
        self.sampler.set_epoch(epoch)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        base = (self.seed * 1_000_003 + self.epoch) * 1_000_003
        for position, index in enumerate(self.sampler):
            if position >= self.start:
                yield int(index), (base + position) % 2**63

    def __len__(self) -> int:
        return len(self.sampler) - self.start


class SeededAugmentation(Dataset):
    """Applies the random transform under a private RNG seeded by the item seed."""

    def __init__(self, dataset: ImageDataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, item: tuple[int, int]):
        index, seed = item
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return self.dataset[index]


def train_loader(
    samples: Sequence[Sample],
    image_size: tuple[int, int],
    ids_per_batch: int,
    instances: int,
    seed: int,
    workers: int,
    cross_domain: bool,
    pin_memory: bool,
    replacement: bool = True,
    erasing: str = "authors",
    padding: int | None = None,
) -> DataLoader:
    """P ids x K images per batch; call `loader.sampler.set_epoch(e)` before each epoch."""
    transform = build_transforms(*image_size, train=True, cross_domain=cross_domain, erasing=erasing,
                                 padding=padding)
    pk = PKSampler(samples, ids_per_batch, instances, seed=seed, replacement=replacement)
    sampler = SeededItems(pk, seed)
    return DataLoader(
        SeededAugmentation(ImageDataset(samples, transform)),
        batch_size=ids_per_batch * instances,
        sampler=sampler,
        drop_last=True,
        num_workers=workers,
        pin_memory=pin_memory,
        persistent_workers=workers > 0,
    )


def test_loader(
    samples: Sequence[Sample], image_size: tuple[int, int], batch_size: int, workers: int, pin_memory: bool
) -> DataLoader:
    transform = build_transforms(*image_size, train=False)
    return DataLoader(
        ImageDataset(samples, transform),
        batch_size=batch_size,
        shuffle=False,
        num_workers=workers,
        pin_memory=pin_memory,
    )


class BatchStream:
    """Endless batches of a PK loader: full passes one after another, each restarting only when the last is
    used up, as the authors' search draws its valid batches. Pass p is the sampler's epoch p, and
    `state()` (pass, batches drawn in it) is all a checkpoint needs to continue the same sequence."""

    def __init__(self, loader: DataLoader):
        self.loader = loader
        self.passes = 0
        self.drawn = 0
        self._batches: Iterator | None = None

    def state(self) -> dict[str, int]:
        return {"pass": self.passes, "drawn": self.drawn}

    def load_state(self, state: dict[str, int]) -> None:
        self.passes, self.drawn, self._batches = state["pass"], state["drawn"], None

    def __iter__(self) -> BatchStream:
        return self

    def __next__(self):
        for _ in range(2):
            if self._batches is None:
                self.loader.sampler.set_epoch(self.passes, start=self.drawn * self.loader.batch_size)
                self._batches = iter(self.loader)
            try:
                batch = next(self._batches)
            except StopIteration:  # the pass is used up: the next one starts
                self.passes, self.drawn, self._batches = self.passes + 1, 0, None
                continue
            self.drawn += 1
            return batch
        raise RuntimeError("the batch stream's loader yields no batch: too few identities for one P x K batch")
