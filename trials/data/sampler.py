"""PK identity sampling: every batch holds P identities with K images each (batch-hard triplet loss needs it).

One epoch (the scheme of the common ReID toolkits): each id's images are shuffled and cut into chunks of K
(an id with fewer than K images gets one chunk drawn with replacement; a trailing partial chunk is
dropped); then batches are formed by repeatedly drawing P distinct ids, at random, among those with chunks
left, and taking one chunk from each, until fewer than P such ids remain.

The order is a pure function of (seed, epoch): call `set_epoch(e)` before each epoch, like
`DistributedSampler`, so that a resumed trial replays exactly the epoch it stopped in.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence

import numpy as np
from torch.utils.data import Sampler


class PKSampler(Sampler[int]):
    """Yields dataset indices, P ids x K images per consecutive `ids_per_batch * images_per_id` indices.

    Use with `DataLoader(dataset, batch_size=sampler.batch_size, sampler=sampler)`.

    Args:
        samples: the training samples (anything with a `.pid`) or their pids, in dataset order.
        ids_per_batch: P, distinct identities per batch.
        images_per_id: K, images per identity in a batch.
        seed: with the epoch, fixes the order.
        replacement: True: an id with fewer than K images is drawn with replacement. False: such ids are
            left out, and a ValueError ("impossible batch") is raised when fewer than P ids have K images.
    """

    def __init__(self, samples: Sequence, ids_per_batch: int, images_per_id: int, seed: int = 0,
                 replacement: bool = True):
        if ids_per_batch < 1 or images_per_id < 1:
            raise ValueError(f"PKSampler: ids_per_batch and images_per_id must be >= 1, got "
                             f"{ids_per_batch} and {images_per_id}")
        self.ids_per_batch = ids_per_batch
        self.images_per_id = images_per_id
        self.seed = seed
        self.replacement = replacement
        self.epoch = 0
        by_pid: dict[int, list[int]] = defaultdict(list)
        for index, item in enumerate(samples):
            by_pid[int(getattr(item, "pid", item))].append(index)
        self.index_by_pid = {pid: by_pid[pid] for pid in sorted(by_pid)}
        if not replacement:
            self.index_by_pid = {p: ix for p, ix in self.index_by_pid.items() if len(ix) >= images_per_id}
        if len(self.index_by_pid) < ids_per_batch:
            most = max((len(ix) for ix in by_pid.values()), default=0)
            condition = f"with at least K={images_per_id} images " if not replacement else ""
            raise ValueError(
                f"PKSampler: impossible batch of P={ids_per_batch} ids x K={images_per_id} images: only "
                f"{len(self.index_by_pid)} of {len(by_pid)} ids {condition}are available "
                f"(the largest id has {most} images); lower P or K"
                + ("" if replacement else ", or allow replacement=True")
            )
        self._cache: tuple[int, list[int]] | None = None

    @property
    def batch_size(self) -> int:
        return self.ids_per_batch * self.images_per_id

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose order the next iteration yields."""
        self.epoch = epoch

    def _order(self) -> list[int]:
        if self._cache is not None and self._cache[0] == self.epoch:
            return self._cache[1]
        rng = np.random.default_rng([self.seed, self.epoch])
        k = self.images_per_id
        chunks: dict[int, list[list[int]]] = {}
        for pid, indices in self.index_by_pid.items():
            if len(indices) < k:
                chunks[pid] = [[int(i) for i in rng.choice(indices, size=k, replace=True)]]
            else:
                shuffled = [indices[i] for i in rng.permutation(len(indices))]
                chunks[pid] = [shuffled[s:s + k] for s in range(0, len(shuffled) - k + 1, k)]
        order: list[int] = []
        available = list(chunks)
        while len(available) >= self.ids_per_batch:
            picked = rng.choice(len(available), size=self.ids_per_batch, replace=False)
            for pid in [available[i] for i in picked]:
                order.extend(chunks[pid].pop())
            available = [pid for pid in available if chunks[pid]]
        self._cache = (self.epoch, order)
        return order

    def __iter__(self) -> Iterator[int]:
        return iter(self._order())

    def __len__(self) -> int:
        return len(self._order())
