"""The validation split: held-out *training* identities, so nothing is ever chosen on the test set.

Trials report `val/...` metrics from this split every epoch; Optuna and early stopping optimise those.
The test splits are evaluated once, at the end, and only compared (docs/method.md, Honest selection).
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Sequence
from typing import NamedTuple

from trials.data.datasets import Sample


class Holdout(NamedTuple):
    train: list[Sample]  # remaining training images, ids relabelled 0..N-1
    query: list[Sample]
    gallery: list[Sample]


def holdout_split(train: Sequence[Sample], fraction: float, seed: int) -> Holdout:
    """Hold out about `fraction` of the training ids (at least 2 when fraction > 0) as val-query/gallery.

    Each held-out id contributes one query per camera it was seen in, except its largest camera, which
    stays in the gallery so that every query has a cross-camera match; single-camera datasets (VehicleID)
    use one gallery image per id and the rest as queries, scored without same-camera removal.
    """
    pids = sorted({s.pid for s in train})
    if fraction <= 0:
        return Holdout(list(train), [], [])
    n_val = max(2, round(len(pids) * fraction))
    if len(pids) - n_val < 2:
        raise ValueError(
            f"val_fraction={fraction}: holding out {n_val} of {len(pids)} training ids leaves fewer than 2 "
            "to train on; lower val_fraction or use a dataset with more ids"
        )
    held = set(random.Random(seed).sample(pids, n_val))
    relabel = {pid: i for i, pid in enumerate(p for p in pids if p not in held)}
    rest = [s._replace(pid=relabel[s.pid]) for s in train if s.pid not in held]

    by_id: dict[int, list[Sample]] = defaultdict(list)
    for s in train:
        if s.pid in held:
            by_id[s.pid].append(s)
    single_camera = len({s.camid for s in train}) == 1
    query: list[Sample] = []
    gallery: list[Sample] = []
    for pid in sorted(by_id):
        images = sorted(by_id[pid], key=lambda s: s.path)
        if single_camera:
            gallery.append(images[0])
            query.extend(images[1:])
            continue
        by_camera: dict[int, list[Sample]] = defaultdict(list)
        for s in images:
            by_camera[s.camid].append(s)
        # The id's largest camera stays whole in the gallery, so every query has a cross-camera match.
        kept = max(by_camera, key=lambda c: (len(by_camera[c]), -c))
        for camid in sorted(by_camera):
            shots = by_camera[camid]
            if camid == kept:
                gallery.extend(shots)
            else:
                query.append(shots[0])
                gallery.extend(shots[1:])
    return Holdout(rest, query, gallery)

