"""A network's features over a loader, and the distances -> metrics call the trials use."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch

from trials.evaluation.metrics import host_array, metric_summary, pairwise_distance, rank_metrics
from trials.evaluation.reranking import re_ranking


def extract_features(model: torch.nn.Module, loader: Iterable, device) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
    """Run ``model`` in eval mode over ``loader`` (batches ``(images, pids, camids, ...)``).

    Returns ``(features, pids, camids)``: float32 features (N, D) left on ``device`` (distances are then
    computed there), pids and camids as numpy arrays. The model's train/eval mode is restored afterwards.
    """
    was_training = model.training
    model.eval()
    features, pids, camids = [], [], []
    try:
        with torch.no_grad():
            for batch in loader:
                images, batch_pids, batch_camids = batch[0], batch[1], batch[2]
                output = model(images.to(device, non_blocking=True))
                if not isinstance(output, torch.Tensor):
                    raise TypeError(f"model must return a feature tensor in eval mode, got {type(output).__name__}")
                features.append(output.float())
                pids.append(host_array(batch_pids).reshape(-1))
                camids.append(host_array(batch_camids).reshape(-1))
    finally:
        model.train(was_training)
    if not features:
        raise ValueError("loader yielded no batches")
    return torch.cat(features), np.concatenate(pids), np.concatenate(camids)


def evaluate(model, query_loader, gallery_loader, device, metric: str = "euclidean", rerank: bool = False,
             remove_same_camera: bool = True, per_query: bool = False) -> dict:
    """Features -> distances -> (optionally re-ranked) Market-1501 metrics, as the trials report them:
    ``{"mAP", "rank1", "rank5", "rank10", "mINP", "cmc" (list), "num_valid_queries"}`` (see
    ``metric_summary``). The caller adds prefixes such as ``val/`` or ``target/``.

    ``rerank=True`` also needs the query x query and gallery x gallery distances (about 1 GB for
    Market-1501's gallery) and runs ``re_ranking`` on the host: about 8 s and 3 GB at that size on 2 CPU cores.
    ``remove_same_camera=False`` for splits without camera labels (VehicleID), where it would drop every match.
    ``per_query=True`` adds ``rank_metrics``' per-query values under ``per_query`` (for intervals)."""
    q_feats, q_pids, q_camids = extract_features(model, query_loader, device)
    g_feats, g_pids, g_camids = extract_features(model, gallery_loader, device)
    distmat = pairwise_distance(q_feats, g_feats, metric)
    if rerank:
        power = 2 if metric == "euclidean" else 1  # Zhong et al. weight squared Euclidean distances
        distmat = re_ranking(
            distmat**power,
            pairwise_distance(q_feats, q_feats, metric) ** power,
            pairwise_distance(g_feats, g_feats, metric) ** power,
        )
    metrics = rank_metrics(distmat, q_pids, g_pids, q_camids, g_camids, remove_same_camera=remove_same_camera)
    summary = metric_summary(metrics)
    if per_query:
        summary["per_query"] = metrics["per_query"]
    return summary
