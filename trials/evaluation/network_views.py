"""Pictures of what a trained network does on its source test split: `rank_lists.png`,
`activation_maps.png` and `rank_lists.json` (the queries, their APs and returned gallery images).

`write_network_views` is what `python -m trials.evaluate --visrank K` calls; `draw_network_views` is the
retrain trial's call at its last epoch, which warns instead of failing a finished training over a figure.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import torch

from trials.data import ReIDDataset, Sample, vehicleid_split
from trials.evaluation.activation_maps import activation_figure, activation_maps
from trials.evaluation.metrics import EVAL_MEMORY_BYTES, host_distance
from trials.evaluation.rank_lists import (
    NUM_QUERIES,
    SEED,
    TOP_K,
    choose_queries,
    query_rankings,
    rank_list_figure,
    ranked_queries,
    save_figure,
)
from trials.evaluation.scoring import split_features

FILES = ("rank_lists.png", "activation_maps.png", "rank_lists.json")


def write_network_views(model: torch.nn.Module, dataset: ReIDDataset, image_size: tuple[int, int], device,
                        out_dir: Path, top_k: int = TOP_K, num_queries: int = NUM_QUERIES, workers: int = 0,
                        seed: int = SEED, memo: dict | None = None,
                        max_bytes: int = EVAL_MEMORY_BYTES) -> dict[str, Path]:
    """Rank `dataset`'s gallery for its queries, choose `num_queries` rows, draw both grids into `out_dir`.
    `memo`: features the scoring of the same network kept (`split_features`), so they are not extracted twice."""
    query, gallery = query_and_gallery(dataset)
    (q_feats, q_pids, q_cams), (g_feats, g_pids, g_cams) = (
        split_features(model, samples, image_size, device, workers=workers, memo=memo) for samples in (query, gallery))
    distmat = host_distance(q_feats, g_feats, max_bytes=max_bytes)
    cameras = len({s.camid for s in (*query, *gallery)}) > 1
    aps, top = query_rankings(distmat, q_pids, g_pids, q_cams, g_cams, top_k, remove_same_camera=cameras)
    rows = ranked_queries(distmat, aps, top, choose_queries(aps, num_queries, seed))
    if not rows:
        raise ValueError(f"{dataset.name}: no query has a match in the gallery, so there is no ranked list to draw")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {name: out_dir / name for name in FILES}
    save_figure(rank_list_figure(query, gallery, rows, image_size, top_k), paths["rank_lists.png"])
    last, part = activation_maps(model, [query[row.index] for row in rows], image_size, device)
    save_figure(activation_figure(query, rows, last, part, image_size), paths["activation_maps.png"])
    paths["rank_lists.json"].write_text(json.dumps(_record(dataset, query, gallery, rows, top_k, seed), indent=2))
    return paths


def draw_network_views(model: torch.nn.Module, splits, cfg, device, workers: int, out_dir: Path,
                       memo: dict | None = None) -> list[Path]:
    """The retrain trial's pictures of its source test split, into the checkpoint folder it reports (MLflow
    logs them from there), from the features its scoring kept in `memo`; a failure is a warning on stderr,
    never a failed trial."""
    try:
        return list(write_network_views(model, splits.source, cfg.image_size, device, out_dir, workers=workers,
                                        memo=memo, max_bytes=int(cfg.eval_memory_gib * 2**30)).values())
    except (ValueError, OSError, RuntimeError, ImportError) as error:  # ImportError: no matplotlib (a bare GPU node)
        print(f"warning: no rank lists or activation maps drawn: {error}", file=sys.stderr)
        return []


def query_and_gallery(dataset: ReIDDataset) -> tuple[list[Sample], list[Sample]]:
    """(query, gallery): the dataset's own, or VehicleID's first protocol draw."""
    if dataset.test is not None and not dataset.query:
        return vehicleid_split(dataset.test, seed=0)
    return list(dataset.query), list(dataset.gallery)


def _record(dataset: ReIDDataset, query, gallery, rows, top_k: int, seed: int) -> dict[str, Any]:
    return {"dataset": dataset.name, "seed": seed, "top_k": top_k, "queries": [
        {"index": row.index, "reason": row.reason, "ap": row.ap, "path": query[row.index].path,
         "pid": query[row.index].pid, "gallery": [{"index": g, "pid": gallery[g].pid, "distance": d}
                                                  for g, d in zip(row.gallery, row.distances, strict=True)]}
        for row in rows]}
