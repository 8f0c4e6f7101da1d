"""The splits a trial works on: training ids, held-out validation ids, source and target test sets."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from trials.config import TrialConfig
from trials.data import ReIDDataset, Sample, load_dataset
from trials.holdout import holdout_split
from trials.scoring import score_split, score_vehicleid


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


def refresh_validation(model: nn.Module, splits: Splits, cfg: TrialConfig, device: torch.device, workers: int,
                       epoch: int, last: dict[str, Any]) -> dict[str, Any]:
    """`val/...` after the first epoch, every `eval_interval` epochs and at the last one; otherwise the last
    values, unchanged. The first evaluation means every report carries the metric schedulers act on."""
    if not splits.val_query or (last and epoch % cfg.eval_interval and epoch != cfg.epochs):
        return last
    metrics = score_split(model, splits.val_query, splits.val_gallery, cfg.image_size, device, "val",
                          workers=workers)
    return {**metrics, "val/epoch": epoch}


def score_tests(model: nn.Module, splits: Splits, cfg: TrialConfig, device: torch.device,
                workers: int) -> dict[str, Any]:
    """`source/...` and, cross-domain, `target/...`: evaluated once at the end, never selected on."""
    metrics = _score_dataset(model, splits.source, "source", cfg, device, workers)
    if splits.target is not None:
        metrics.update(_score_dataset(model, splits.target, "target", cfg, device, workers))
    return metrics


def _score_dataset(model, dataset: ReIDDataset, prefix: str, cfg: TrialConfig, device, workers):
    if dataset.name == "vehicleid":
        return score_vehicleid(model, dataset.test, cfg.image_size, device, prefix, seed=cfg.seed,
                               workers=workers)
    return score_split(model, dataset.query, dataset.gallery, cfg.image_size, device, prefix,
                       workers=workers, rerank=cfg.rerank)


def _load(name: str, cfg: TrialConfig) -> ReIDDataset:
    options = {"test_size": cfg.vehicleid_test_size} if name == "vehicleid" else {}
    return load_dataset(name, cfg.data_dir, **options)
