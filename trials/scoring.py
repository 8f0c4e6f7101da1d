"""Scoring a network on a ReID split: features -> distances -> CMC / mAP / mINP, as flat metric dicts.

Keys are `PREFIX/mAP`, `PREFIX/rank1`, `PREFIX/rank5`, `PREFIX/rank10`, `PREFIX/mINP`,
`PREFIX/num_valid_queries` and the CMC curve as `PREFIX/cmc` (a list), the form of
`trials.evaluation.metric_summary`, with PREFIX one of `val`, `source`, `target`: the names every phase and every
study share, so runs line up in MLflow and in reports.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from trials.data import Sample
from trials.evaluation import evaluate, extract_features, metric_summary, vehicleid_metrics
from trials.loaders import test_loader


def score_split(
    model: nn.Module,
    query: Sequence[Sample],
    gallery: Sequence[Sample],
    image_size: tuple[int, int],
    device: torch.device,
    prefix: str,
    batch_size: int = 128,
    workers: int = 0,
    rerank: bool = False,
) -> dict[str, Any]:
    """Market-1501 protocol; splits without camera labels are scored without same-camera removal."""
    loaders = [test_loader(samples, image_size, batch_size, workers, pin_memory=device.type == "cuda")
               for samples in (query, gallery)]
    cameras = len({s.camid for s in (*query, *gallery)}) > 1
    return _prefixed(evaluate(model, *loaders, device, rerank=rerank, remove_same_camera=cameras), prefix)


def score_vehicleid(
    model: nn.Module,
    test: Sequence[Sample],
    image_size: tuple[int, int],
    device: torch.device,
    prefix: str,
    seed: int = 0,
    batch_size: int = 128,
    workers: int = 0,
) -> dict[str, Any]:
    """VehicleID protocol: one random gallery image per id, the rest queries, averaged over 10 draws."""
    loader = test_loader(list(test), image_size, batch_size, workers, pin_memory=device.type == "cuda")
    features, pids, _ = extract_features(model, loader, device)
    return _prefixed(metric_summary(vehicleid_metrics(features, pids, num_draws=10, seed=seed)), prefix)


def _prefixed(summary: dict[str, Any], prefix: str) -> dict[str, Any]:
    return {f"{prefix}/{key}": value for key, value in summary.items()}
