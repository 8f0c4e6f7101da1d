"""Scoring a network on a ReID split: features -> distances -> CMC / mAP / mINP, as flat metric dicts.

Keys are `PREFIX/mAP`, `PREFIX/rank1`, `PREFIX/rank5`, `PREFIX/rank10`, `PREFIX/mINP` (and the CMC curve
as `PREFIX/cmc`, a list), with PREFIX one of `val`, `source`, `target`: the names every phase and every
study share, so runs line up in MLflow and in reports.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from trials.data import Sample
from trials.evaluation import extract_features, pairwise_distance, rank_metrics, re_ranking, vehicleid_metrics
from trials.loaders import test_loader

RANKS = (1, 5, 10)


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
    features, pids, camids = _features(model, list(query) + list(gallery), image_size, device, batch_size, workers)
    n = len(query)
    qf, gf = features[:n], features[n:]
    distmat = pairwise_distance(qf, gf)
    if rerank:  # k-reciprocal re-ranking works on squared euclidean distances, as in its paper's code
        distmat = re_ranking(distmat**2, pairwise_distance(qf, qf) ** 2, pairwise_distance(gf, gf) ** 2)
    cameras = len(set(camids.tolist())) > 1
    result = rank_metrics(distmat, pids[:n], pids[n:], camids[:n], camids[n:], remove_same_camera=cameras)
    return _flatten(result, prefix)


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
    features, pids, _ = _features(model, list(test), image_size, device, batch_size, workers)
    return _flatten(vehicleid_metrics(features, pids, num_draws=10, seed=seed), prefix)


def _features(model, samples, image_size, device, batch_size, workers):
    loader = test_loader(samples, image_size, batch_size, workers, pin_memory=device.type == "cuda")
    features, pids, camids = extract_features(model, loader, device)  # eval mode, then restored
    return features, np.asarray(pids), np.asarray(camids)


def _flatten(result: dict[str, Any], prefix: str) -> dict[str, Any]:
    cmc = np.asarray(result["cmc"], dtype=float)
    flat = {f"{prefix}/mAP": float(result["mAP"]), f"{prefix}/mINP": float(result["mINP"])}
    for k in RANKS:
        flat[f"{prefix}/rank{k}"] = float(cmc[min(k, len(cmc)) - 1])
    flat[f"{prefix}/cmc"] = [round(float(v), 6) for v in cmc]
    return flat
