"""Scoring a network on a trial's splits: features -> distances -> CMC / mAP / mINP, as flat metric dicts.

Keys are `PREFIX/mAP`, `PREFIX/rank1`, `PREFIX/rank5`, `PREFIX/rank10`, `PREFIX/mINP`,
`PREFIX/num_valid_queries`, `PREFIX/num_valid_ids` and the CMC curve as `PREFIX/cmc` (a list), the form of
`metrics.metric_summary`, with PREFIX one of `val`, `source`, `target`: the names every phase and every study
share, so runs line up in MLflow and in reports. The validation split also gets each score's bootstrap 95 %
interval, `val/mAP_ci_low` and `val/mAP_ci_high` and so on: trials are chosen on it, often from few
identities, and a choice is only as good as the gap between intervals (analysis.uncertainty.cluster_interval:
the held-out identities are resampled, since the queries of one identity are not independent).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from trials.config import TrialConfig
from trials.data import ReIDDataset, Sample
from trials.data.loaders import test_loader
from trials.data.splits import Splits
from trials.dataset_names import metric_label
from trials.evaluation.features import extract_features, score_features
from trials.evaluation.metrics import EVAL_MEMORY_BYTES, metric_summary, query_scores, vehicleid_metrics
from trials.evaluation.reranking import check_rerank_memory


def split_features(model: nn.Module, samples: Sequence[Sample], image_size: tuple[int, int], device: torch.device,
                   batch_size: int = 128, workers: int = 0, memo: dict | None = None) -> tuple:
    """`extract_features` of a list of images at `image_size`. With `memo` (a dict the caller keeps while
    the network does not change) a list is run through the network once: the last epoch scores the source
    test split and then draws its rank lists from the same features."""
    key = (tuple(image_size), tuple(s.path for s in samples))
    if memo is not None and key in memo:
        return memo[key]
    loader = test_loader(samples, image_size, batch_size, workers, pin_memory=device.type == "cuda")
    features = extract_features(model, loader, device)
    if memo is not None:
        memo[key] = features
    return features


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
    max_bytes: int = EVAL_MEMORY_BYTES,
    memo: dict | None = None,
    intervals: bool = False,
) -> dict[str, Any]:
    """Market-1501 protocol; splits without camera labels are scored without same-camera removal. The
    device holds the features and at most `max_bytes` more (`score_features`). `intervals`: also each
    score's bootstrap interval (`score_intervals`)."""
    if rerank:
        check_rerank_memory(len(query), len(gallery))  # before any feature is extracted
    features = [split_features(model, samples, image_size, device, batch_size, workers, memo)
                for samples in (query, gallery)]
    cameras = len({s.camid for s in (*query, *gallery)}) > 1
    summary = score_features(*features, rerank=rerank, remove_same_camera=cameras, max_bytes=max_bytes,
                             per_query=intervals)
    if intervals:
        summary.update(score_intervals(summary.pop("per_query")))
    return _prefixed(summary, prefix)


def score_intervals(per_query: dict[str, Any]) -> dict[str, float]:
    """`mAP_ci_low`, `mAP_ci_high`, ... : the bootstrap 95 % interval of each score, resampling identities."""
    from analysis.uncertainty import cluster_interval, interval_keys  # numpy only

    out: dict[str, float] = {}
    for name, values in query_scores(per_query).items():
        out.update(zip(interval_keys(name), cluster_interval(values, per_query["pid"]), strict=True))
    return out


def score_vehicleid(
    model: nn.Module,
    test: Sequence[Sample],
    image_size: tuple[int, int],
    device: torch.device,
    prefix: str,
    seed: int = 0,
    batch_size: int = 128,
    workers: int = 0,
    num_draws: int = 10,
    max_bytes: int = EVAL_MEMORY_BYTES,
    memo: dict | None = None,
) -> dict[str, Any]:
    """VehicleID protocol: one random gallery image per id, the rest queries, averaged over `num_draws`."""
    features, pids, _ = split_features(model, list(test), image_size, device, batch_size, workers, memo)
    return _prefixed(metric_summary(vehicleid_metrics(features, pids, num_draws=num_draws, seed=seed,
                                                      max_bytes=max_bytes)), prefix)


def refresh_validation(model: nn.Module, splits: Splits, cfg: TrialConfig, device: torch.device, workers: int,
                       epoch: int, last: dict[str, Any]) -> dict[str, Any]:
    """`val/...` after the first epoch, every `eval_interval` epochs and at the last one; otherwise the last
    values, unchanged. The first evaluation means every report carries the metric schedulers act on."""
    if not splits.val_query or (last and epoch % cfg.eval_interval and epoch != cfg.epochs):
        return last
    metrics = score_split(model, splits.val_query, splits.val_gallery, cfg.image_size, device, "val",
                          workers=workers, max_bytes=eval_bytes(cfg), intervals=True)
    return {**metrics, "val/epoch": epoch}


def score_tests(model: nn.Module, splits: Splits, cfg: TrialConfig, device: torch.device,
                workers: int, memo: dict | None = None) -> dict[str, Any]:
    """`source/...` and, cross-domain, `target/...`: evaluated once at the end, never selected on.

    Several sources: each scored on its own test split as `source/LABEL/...` (LABEL: the source's name,
    a list folder's base name), and `source/...` holds their unweighted mean (queries summed, no CMC).
    `memo`: keeps the features for a later use of the same network (`split_features`)."""
    if len(splits.sources) > 1:
        metrics = _score_sources(model, splits.sources, cfg, device, workers, memo)
    else:
        metrics = _score_dataset(model, splits.source, "source", cfg, device, workers, memo)
    if splits.target is not None:
        metrics.update(_score_dataset(model, splits.target, "target", cfg, device, workers, memo))
    return metrics


def check_test_rerank(splits: Splits, cfg: TrialConfig, available: int | None = None) -> None:
    """With `rerank`, refuse at the start of a trial the test splits whose re-ranking cannot fit in host
    memory (`available`, default what the machine has now), rather than after training (VehicleID is scored
    without re-ranking)."""
    if cfg.rerank:
        for dataset in (*splits.sources, *([splits.target] if splits.target is not None else [])):
            if dataset.name != "vehicleid":
                check_rerank_memory(len(dataset.query), len(dataset.gallery), available)


def eval_bytes(cfg: TrialConfig) -> int:
    return int(cfg.eval_memory_gib * 2**30)


def _score_dataset(model, dataset: ReIDDataset, prefix: str, cfg: TrialConfig, device, workers, memo=None):
    if dataset.name == "vehicleid":
        return score_vehicleid(model, dataset.test, cfg.image_size, device, prefix, seed=cfg.seed,
                               workers=workers, num_draws=cfg.vehicleid_draws, max_bytes=eval_bytes(cfg), memo=memo)
    return score_split(model, dataset.query, dataset.gallery, cfg.image_size, device, prefix,
                       workers=workers, rerank=cfg.rerank, max_bytes=eval_bytes(cfg), memo=memo)


def _score_sources(model, sources: Sequence[ReIDDataset], cfg: TrialConfig, device, workers,
                   memo=None) -> dict[str, Any]:
    labels = [metric_label(source.name) for source in sources]
    labels = [label if labels.count(label) == 1 else f"{label}_{i}" for i, label in enumerate(labels)]
    metrics: dict[str, Any] = {}
    for source, label in zip(sources, labels, strict=True):
        metrics.update(_score_dataset(model, source, f"source/{label}", cfg, device, workers, memo))
    for key in ("mAP", "rank1", "rank5", "rank10", "mINP", "num_valid_queries", "num_valid_ids"):
        values = [metrics[f"source/{label}/{key}"] for label in labels if f"source/{label}/{key}" in metrics]
        if len(values) == len(labels):
            total = sum(values)
            metrics[f"source/{key}"] = total if key.startswith("num_") else total / len(values)
    return metrics


def _prefixed(summary: dict[str, Any], prefix: str) -> dict[str, Any]:
    return {f"{prefix}/{key}": value for key, value in summary.items()}
