"""The splits a trial works on: training ids, held-out validation ids, source and target test sets."""

from __future__ import annotations

from dataclasses import dataclass

from trials.config import TrialConfig
from trials.data.datasets import ReIDDataset, Sample, load_dataset
from trials.data.holdout import holdout_split


@dataclass
class Splits:
    train: list[Sample]
    num_classes: int
    val_query: list[Sample]
    val_gallery: list[Sample]
    source: ReIDDataset
    target: ReIDDataset | None


def load_splits(cfg: TrialConfig) -> Splits:
    """Source training ids minus the validation hold-out; test sets untouched until the end."""
    source = _load(cfg.dataset, cfg)
    target = _load(cfg.target_dataset, cfg) if cfg.target_dataset else None
    held = holdout_split(source.train, cfg.val_fraction, cfg.seed)
    num_classes = len({s.pid for s in held.train})
    return Splits(held.train, num_classes, held.query, held.gallery, source, target)


def _load(name: str, cfg: TrialConfig) -> ReIDDataset:
    options = {"test_size": cfg.vehicleid_test_size} if name == "vehicleid" else {}
    return load_dataset(name, cfg.data_dir, **options)
