"""The order of each identity's images before the TCM (and classification) split halves them.

The split gives the first half of a shared identity's images to the search-train side. The authors take
them in dataset order: the list-file order where a dataset has list files (MSMT17, VehicleID), and for
directory-scanned layouts (Market-1501, VeRi-776) the order the file system returns, which is effectively
unordered. Sorting file names instead would put whole cameras into one half (names start with the camera),
so for those layouts the images of each id are shuffled with the trial's seed.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Sequence

from trials.config import HALVING_ORDERS
from trials.data.datasets import Sample


def halving_order(samples: Sequence[Sample], listed: bool, order: str = "dataset", seed: int = 0) -> list[Sample]:
    """`dataset` (the authors'): list order when `listed`, else a seeded shuffle within each id.
    `sorted`: by file name, the platform's earlier behaviour (the halves then split by camera)."""
    if order not in HALVING_ORDERS:
        raise ValueError(f"halving_order: expected one of {', '.join(HALVING_ORDERS)}, got {order!r}")
    if order == "sorted":
        return sorted(samples, key=lambda s: s.path)
    if listed:
        return list(samples)
    rng = random.Random(seed)
    by_id: dict[int, list[Sample]] = defaultdict(list)
    for sample in samples:
        by_id[sample.pid].append(sample)
    ordered: list[Sample] = []
    for pid in sorted(by_id):
        images = sorted(by_id[pid], key=lambda s: s.path)  # independent of how the folder was read
        rng.shuffle(images)
        ordered.extend(images)
    return ordered
