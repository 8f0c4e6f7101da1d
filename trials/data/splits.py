"""The splits a trial works on: training ids, held-out validation ids, source and target test sets.

A dataset named `a+b` trains on the union of the sources' training splits, with identities and cameras
offset so that they stay apart; the hold-out is drawn from the union; each source keeps its own test split.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from trials.config import TrialConfig
from trials.data.datasets import ReIDDataset, Sample
from trials.data.holdout import holdout_split
from trials.data.registry import load_dataset
from trials.dataset_names import DatasetError, dataset_kind, source_names


@dataclass
class Splits:
    train: list[Sample]
    num_classes: int
    val_query: list[Sample]
    val_gallery: list[Sample]
    source: ReIDDataset  # the union of `sources` when there are several
    target: ReIDDataset | None
    sources: list[ReIDDataset] = field(default_factory=list)  # each tested on its own test split


def load_splits(cfg: TrialConfig) -> Splits:
    """Source training ids minus the validation hold-out; test sets untouched until the end."""
    sources = load_sources(cfg.dataset, cfg.data_dir, cfg.vehicleid_test_size)
    source = sources[0] if len(sources) == 1 else union(cfg.dataset, sources)
    target = _load(cfg.target_dataset, cfg.data_dir, cfg.vehicleid_test_size) if cfg.target_dataset else None
    held = holdout_split(source.train, cfg.val_fraction, cfg.seed)
    num_classes = len({s.pid for s in held.train})
    return Splits(held.train, num_classes, held.query, held.gallery, source, target, sources)


def load_sources(name: str, data_dir: str | os.PathLike, vehicleid_test_size: int = 2400) -> list[ReIDDataset]:
    """Every source of `name` (`a+b`: two), all persons or all vehicles."""
    dataset_kind(name, data_dir)
    return [_load(part, data_dir, vehicleid_test_size) for part in source_names(name)]


def union(name: str, sources: list[ReIDDataset]) -> ReIDDataset:
    """The sources' training splits as one: pids and cameras offset source after source (in name order).

    `listed` only when every source is (else each id is shuffled before TCM halves it); no test split of
    its own: each source is tested on its own.
    """
    kinds = {s.kind for s in sources}
    if len(kinds) > 1:
        raise DatasetError(f"dataset {name!r} mixes persons and vehicles; train them separately")
    train: list[Sample] = []
    pid_offset = cam_offset = 0
    for source in sources:
        train += [s._replace(pid=s.pid + pid_offset, camid=s.camid + cam_offset) for s in source.train]
        pid_offset += max((s.pid for s in source.train), default=-1) + 1
        cam_offset += max((s.camid for s in source.train), default=-1) + 1
    return ReIDDataset(name, train, [], [], root=os.pathsep.join(s.root for s in sources), kind=kinds.pop(),
                       listed=all(s.listed for s in sources))


def _load(name: str, data_dir: str | os.PathLike, vehicleid_test_size: int) -> ReIDDataset:
    options = {"test_size": vehicleid_test_size} if name == "vehicleid" else {}
    return load_dataset(name, data_dir, **options)
