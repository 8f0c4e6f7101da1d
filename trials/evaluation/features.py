"""A network's features over a loader, and the distances -> metrics call the trials use."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch

from trials.evaluation.metrics import EVAL_MEMORY_BYTES, host_array, host_distance, metric_summary, rank_metrics
from trials.evaluation.reranking import check_rerank_memory, re_ranking


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
             remove_same_camera: bool = True, max_bytes: int = EVAL_MEMORY_BYTES, per_query: bool = False) -> dict:
    """Features -> distances -> (optionally re-ranked) Market-1501 metrics, as the trials report them:
    ``{"mAP", "rank1", "rank5", "rank10", "mINP", "cmc" (list), "num_valid_queries"}`` (see
    ``metric_summary``). The caller adds prefixes such as ``val/`` or ``target/``. A re-ranking that cannot
    fit in host memory is refused before any feature is extracted (``check_rerank_memory``).
    ``per_query=True`` adds ``rank_metrics``' per-query values under ``per_query`` (for intervals)."""
    if rerank:
        sizes = [len(loader.dataset) for loader in (query_loader, gallery_loader) if hasattr(loader, "dataset")]
        if len(sizes) == 2:
            check_rerank_memory(*sizes)
    query = extract_features(model, query_loader, device)
    gallery = extract_features(model, gallery_loader, device)
    return score_features(query, gallery, metric, rerank, remove_same_camera, max_bytes, per_query)


def score_features(query: tuple, gallery: tuple, metric: str = "euclidean", rerank: bool = False,
                   remove_same_camera: bool = True, max_bytes: int = EVAL_MEMORY_BYTES,
                   per_query: bool = False) -> dict:
    """The metrics of `extract_features` results ``(features, pids, camids)`` of a query and a gallery.

    Distances are computed on the features' device in row chunks whose temporaries stay within `max_bytes`
    and gathered in host memory (`host_distance`), so the device holds the features and at most `max_bytes`
    more: MSMT17's test distances alone are 3.8 GB. ``rerank=True`` also needs the query x query and
    gallery x gallery distances, computed the same way, and runs ``re_ranking`` on the host: about 8 s on 2
    CPU cores and 1.6 GiB (``rerank_bytes``) at Market-1501's size, 34 GiB at MSMT17's (refused where that
    much is not available).
    ``remove_same_camera=False`` for splits without camera labels (VehicleID), where it would drop every match."""
    (q_feats, q_pids, q_camids), (g_feats, g_pids, g_camids) = query, gallery
    power = 2 if rerank and metric == "euclidean" else 1  # Zhong et al. weight squared Euclidean distances
    if rerank:
        check_rerank_memory(len(q_feats), len(g_feats))
    distmat = host_distance(q_feats, g_feats, metric, max_bytes, power)
    if rerank:
        distmat = re_ranking(distmat, host_distance(q_feats, q_feats, metric, max_bytes, power),
                             host_distance(g_feats, g_feats, metric, max_bytes, power))
    metrics = rank_metrics(distmat, q_pids, g_pids, q_camids, g_camids, remove_same_camera=remove_same_camera)
    summary = metric_summary(metrics)
    if per_query:
        summary["per_query"] = metrics["per_query"]
    return summary
