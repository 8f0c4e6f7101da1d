"""ReID ranking metrics: distances, the Market-1501 protocol (CMC, mAP, mINP) and VehicleID's draws.

Protocol (Market-1501, as in Zheng et al. ICCV 2015 and every ReID toolkit since): for each query, rank
the gallery by distance (ties: lower gallery index first, i.e. a stable sort); drop gallery images with the
query's id *and* camera; skip a query with no remaining match. CMC rank-k is the fraction of queries whose
first match is within the top k, AP averages the precision at every match, and INP = matches / rank of the
last match (Ye et al., "Deep Learning for Person Re-identification: A Survey and Outlook", the AGW paper).
Gallery distractors (id 0) are ordinary negatives.

`rank_metrics` never argsorts a whole distance row: all it needs is the rank of each *match* in the
filtered ranking. It sorts each row's values (numpy's SIMD sort, several times faster than a stable
argsort), finds each match's rank by binary search, breaks exact ties by gallery index, and subtracts the
removed same-camera images ranked before it. Everything else works on the few match entries per query.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
import torch.nn.functional as F

REPORTED_RANKS = (1, 5, 10)
EVAL_MEMORY_BYTES = 2 * 2**30  # device memory distances may use beyond the features (TrialConfig.eval_memory_gib)


# --------------------------------------------------------------------------------------------- distances
def pairwise_distance(
    query_features: torch.Tensor,
    gallery_features: torch.Tensor,
    metric: str = "euclidean",
    normalize: bool = True,
    chunk_size: int = 4096,
    out: np.ndarray | None = None,
) -> torch.Tensor | np.ndarray:
    """Distances between every query and every gallery feature, as a (num_query, num_gallery) tensor.

    * ``"euclidean"``: ``||q - g||_2``, by default on L2-normalised features (``normalize=True``, the
      MSINet test protocol; then it equals ``sqrt(2 - 2 cos)`` and ranks like cosine). ``normalize=False``
      uses the raw features.
    * ``"cosine"``: ``1 - cos(q, g)`` (always normalises; ``normalize`` is ignored).

    Computed in float32 on the query features' device (gallery features are moved there; nothing assumes
    CUDA), ``chunk_size`` query rows at a time: the device holds two ``chunk_size x num_gallery`` float32
    temporaries beyond the features (``chunk_rows`` sizes a chunk to a memory bound). Returns a float32
    torch tensor on that device; with ``out`` (a float32 numpy array of the result's shape) each chunk is
    copied into it instead and ``out`` is returned, so the whole matrix never sits on the device.
    ``rank_metrics`` and ``re_ranking`` accept either. Numpy inputs are treated as CPU tensors.
    """
    if metric not in ("euclidean", "cosine"):
        raise ValueError(f"metric must be 'euclidean' or 'cosine', got {metric!r}")
    query = torch.as_tensor(query_features)
    gallery = torch.as_tensor(gallery_features).to(query.device)
    if query.ndim != 2 or gallery.ndim != 2 or query.shape[1] != gallery.shape[1]:
        raise ValueError(
            "query_features and gallery_features must be 2-D with the same feature size, got shapes "
            f"{tuple(query.shape)} and {tuple(gallery.shape)}"
        )
    shape = (query.shape[0], gallery.shape[0])
    if out is not None and (out.shape != shape or out.dtype != np.float32):
        raise ValueError(f"out must be a float32 array of shape {shape}, got {out.dtype} {out.shape}")
    with torch.no_grad():
        query, gallery = query.float(), gallery.float()
        if normalize or metric == "cosine":
            query, gallery = F.normalize(query, dim=1), F.normalize(gallery, dim=1)
        gallery_t = gallery.t()
        gallery_sq = gallery.pow(2).sum(dim=1)
        result = torch.empty(shape, dtype=torch.float32, device=query.device) if out is None else out
        for start in range(0, query.shape[0], chunk_size):
            q = query[start : start + chunk_size]
            dot = q @ gallery_t
            if metric == "cosine":
                block = dot.neg_().add_(1.0)  # 1 - dot, in place
            else:
                block = (q.pow(2).sum(dim=1, keepdim=True) + gallery_sq).sub_(dot.mul_(2.0))
                block = block.clamp_min_(0.0).sqrt_()
            if out is None:
                result[start : start + len(q)] = block
            else:
                out[start : start + len(q)] = block.cpu().numpy()
            del dot, block
    return result


DISTANCE_TEMPORARIES = 2  # float32 chunk x gallery matrices `pairwise_distance` holds at once


def chunk_rows(num_gallery: int, max_bytes: int) -> int:
    """Query rows per `pairwise_distance` chunk so that its device temporaries stay within `max_bytes`."""
    return max(1, int(max_bytes) // (DISTANCE_TEMPORARIES * 4 * max(num_gallery, 1)))


def host_distance(query_features: torch.Tensor, gallery_features: torch.Tensor, metric: str = "euclidean",
                  max_bytes: int = EVAL_MEMORY_BYTES, power: int = 1) -> np.ndarray:
    """`pairwise_distance` into host memory, in chunks whose device temporaries stay within `max_bytes`
    (beyond the features): MSMT17's 11,659 x 82,161 test distances are 3.8 GB, which a GPU shared by packed
    trials should not have to hold at once. `power` 2 squares them in place (re-ranking's weighting)."""
    num_query, num_gallery = len(query_features), len(gallery_features)
    out = np.empty((num_query, num_gallery), dtype=np.float32)
    pairwise_distance(query_features, gallery_features, metric, chunk_size=chunk_rows(num_gallery, max_bytes),
                      out=out)
    if power != 1:
        np.power(out, power, out=out)
    return out


# ---------------------------------------------------------------------------------------- ranking metrics
def rank_metrics(
    distmat,
    q_pids,
    g_pids,
    q_camids,
    g_camids,
    max_rank: int = 50,
    remove_same_camera: bool = True,
    chunk_size: int = 256,
    num_threads: int | None = None,
) -> dict:
    """CMC, mAP and mINP under the Market-1501 protocol (module docstring) for a query x gallery distmat.

    Arguments may be numpy arrays or torch tensors (any device; they are copied to host memory). Returns
    ``{"cmc": float64 array of length min(max_rank, num_gallery), "mAP": float, "mINP": float,
    "num_valid_queries": int, "num_valid_ids": int, "per_query": {...}}``, where ``per_query`` holds, for
    every valid query in order, its ``pid``, ``ap``, ``inp`` and 0-based ``first_rank`` (what a bootstrap
    of the scores resamples: ``query_scores``). Raises ValueError on shape mismatches, NaN distances, or when no query
    has a match left in the gallery.

    Queries are processed ``chunk_size`` rows at a time by ``num_threads`` threads (default
    ``torch.get_num_threads()``, which follows OMP_NUM_THREADS and so a Ray worker's CPU share; numpy's
    sort releases the GIL). Peak extra memory is about ``num_threads x chunk_size x num_gallery``
    distances (the sorted copies: 16 MB per thread for 256 x 15,913 float32) plus arrays the size of the
    chunks' matches. The result does not depend on ``chunk_size`` or ``num_threads``.
    """
    dist = host_array(distmat)
    if dist.ndim != 2:
        raise ValueError(f"distmat must be 2-D (num_query, num_gallery), got shape {dist.shape}")
    num_query, num_gallery = dist.shape
    q_pids = _vector(q_pids, "q_pids", num_query, dist.shape)
    q_camids = _vector(q_camids, "q_camids", num_query, dist.shape)
    g_pids = _vector(g_pids, "g_pids", num_gallery, dist.shape)
    g_camids = _vector(g_camids, "g_camids", num_gallery, dist.shape)
    if max_rank < 1:
        raise ValueError(f"max_rank must be >= 1, got {max_rank}")
    if not np.issubdtype(dist.dtype, np.floating) or dist.dtype == np.float16:  # sorted exactly as float32/64
        dist = dist.astype(np.float64 if dist.dtype.itemsize > 2 else np.float32)

    # The gallery images of every query's id, as [lo, hi) ranges of `by_pid` (gallery indices grouped
    # by id, ascending within an id).
    by_pid = np.argsort(g_pids, kind="stable")
    sorted_pids = g_pids[by_pid]
    match_lo = np.searchsorted(sorted_pids, q_pids, side="left")
    match_hi = np.searchsorted(sorted_pids, q_pids, side="right")
    num_ranks = min(max_rank, num_gallery)

    def chunk_scores(start: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(histogram of first-match ranks, then the pid, AP, INP and first-match rank of each valid query)
        of one chunk."""
        stop = min(start + chunk_size, num_query)
        block = dist[start:stop]
        if np.isnan(block).any():
            raise ValueError(f"distmat contains NaN (query rows {start}..{stop - 1})")
        rows = slice(start, stop)
        row, ranks = _match_ranks(
            block, match_lo[rows], match_hi[rows], by_pid, g_camids, q_camids[rows], remove_same_camera
        )
        # `ranks` are 0-based ranks in the filtered list, ascending within each row.
        num_matches = np.bincount(row, minlength=stop - start)
        valid = num_matches > 0
        seg_start = np.cumsum(num_matches) - num_matches
        hits_so_far = np.arange(len(row)) - seg_start[row] + 1
        ap = np.bincount(row, weights=hits_so_far / (ranks + 1), minlength=stop - start)[valid] / num_matches[valid]
        first_rank = ranks[seg_start[valid]]
        last_rank = ranks[seg_start[valid] + num_matches[valid] - 1]
        first_hist = np.bincount(np.minimum(first_rank, num_ranks), minlength=num_ranks + 1)  # last: beyond
        return first_hist, q_pids[rows][valid], ap, num_matches[valid] / (last_rank + 1), first_rank

    starts = range(0, num_query, chunk_size)
    num_threads = min(num_threads or torch.get_num_threads(), len(starts))
    if num_threads > 1:
        with ThreadPoolExecutor(num_threads) as pool:
            parts = list(pool.map(chunk_scores, starts))
    else:
        parts = [chunk_scores(start) for start in starts]

    per_query = {name: np.concatenate([part[i] for part in parts])
                 for i, name in enumerate(("pid", "ap", "inp", "first_rank"), start=1)}
    num_valid = len(per_query["ap"])
    if num_valid == 0:
        raise ValueError(
            f"no query has a match in the gallery ({num_query} queries, {num_gallery} gallery images, "
            f"remove_same_camera={remove_same_camera}): check that query and gallery share identities"
        )
    first_match_hist = np.sum([part[0] for part in parts], axis=0)
    return {
        "cmc": np.cumsum(first_match_hist[:num_ranks]) / num_valid,
        "mAP": float(per_query["ap"].sum()) / num_valid,
        "mINP": float(per_query["inp"].sum()) / num_valid,
        "num_valid_queries": num_valid,
        "num_valid_ids": int(np.unique(per_query["pid"]).size),
        "per_query": per_query,
    }


def query_scores(per_query: dict) -> dict[str, np.ndarray]:
    """Each reported score as the per-query values it is the mean of (``rank_metrics``' ``per_query``):
    AP for mAP, INP for mINP, whether the first match is within the top k for rank-k."""
    first = np.asarray(per_query["first_rank"])
    scores = {"mAP": np.asarray(per_query["ap"], dtype=float)}
    scores.update({f"rank{k}": (first < k).astype(float) for k in REPORTED_RANKS})
    scores["mINP"] = np.asarray(per_query["inp"], dtype=float)
    return scores


def _match_ranks(block, match_lo, match_hi, by_pid, g_camids, q_camids, remove_same_camera):
    """(row, rank) of every kept match of a chunk of queries, sorted by row then rank.

    A gallery item's position in the stable ranking of its row is #(smaller distances) + #(equal
    distances at lower indices); its rank in the *filtered* ranking subtracts the removed same-camera
    items placed before it. Only same-id items (matches and removed ones) are ever looked at one by one.
    """
    num_rows, num_gallery = block.shape
    counts = match_hi - match_lo
    entry_idx, row = ragged_arange(match_lo, counts)
    col = by_pid[entry_idx]  # ascending within each row
    value = block[row, col]
    removed = (g_camids[col] == q_camids[row]) if remove_same_camera else np.zeros(len(row), dtype=bool)

    # Position among all gallery items: binary search of each match in its sorted row.
    sorted_rows = torch.from_numpy(np.sort(block, axis=1))
    width = int(counts.max(initial=0))
    padded = np.full((num_rows, max(width, 1)), np.inf, dtype=block.dtype)
    slot = np.arange(len(row)) - (np.cumsum(counts) - counts)[row]
    padded[row, slot] = value
    padded = torch.from_numpy(padded)
    below = torch.searchsorted(sorted_rows, padded).numpy()[row, slot]
    at_or_below = torch.searchsorted(sorted_rows, padded, right=True).numpy()[row, slot]
    position = below.astype(np.int64)
    tied = np.flatnonzero(at_or_below - below > 1)
    for part in np.array_split(tied, max(1, math.ceil(len(tied) * num_gallery / 2**24))):
        if len(part):  # exact ties: count equal distances at lower gallery indices
            equal_before = (block[row[part]] == value[part, None]) & (np.arange(num_gallery) < col[part, None])
            position[part] += equal_before.sum(axis=1)

    # Removed items placed before each kept match, counted within the row's entries in ranking order.
    order = np.lexsort((position, row))
    row, position, removed = row[order], position[order], removed[order]
    removed_before = np.cumsum(removed) - removed
    row_start = np.searchsorted(row, row, side="left")
    removed_before -= removed_before[row_start]
    keep = ~removed
    return row[keep], position[keep] - removed_before[keep]


# ---------------------------------------------------------------------------------------- VehicleID draws
def vehicleid_splits(pids, num_draws: int = 10, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """The VehicleID test draws as ``(query_indices, gallery_indices)`` pairs: in each draw one uniformly
    random image of every id is the gallery and all other images are queries. Draw d is the d-th draw of
    ``np.random.default_rng(seed)``, so a seed always gives the same galleries."""
    pids = host_array(pids).reshape(-1)
    rng = np.random.default_rng(seed)
    splits = []
    for _ in range(num_draws):
        shuffled = rng.permutation(len(pids))
        _, first = np.unique(pids[shuffled], return_index=True)  # each id's first image after shuffling
        is_gallery = np.zeros(len(pids), dtype=bool)
        is_gallery[shuffled[first]] = True
        splits.append((np.flatnonzero(~is_gallery), np.flatnonzero(is_gallery)))
    return splits


def vehicleid_metrics(
    features,
    pids,
    num_draws: int = 10,
    seed: int = 0,
    max_rank: int = 50,
    metric: str = "euclidean",
    max_bytes: int = EVAL_MEMORY_BYTES,
) -> dict:
    """The VehicleID protocol: CMC, mAP and mINP averaged over the ``vehicleid_splits`` draws. There are
    no cameras, so nothing is removed from the gallery (``remove_same_camera=False``).

    Distances are computed on the features' device within ``max_bytes`` beyond the features and gathered
    on the host (``host_distance``). Returns the dict of ``rank_metrics``; ``num_valid_queries`` is the
    per-draw count (the same in every draw).
    """
    feats = torch.as_tensor(features)
    pids = host_array(pids).reshape(-1)
    if feats.ndim != 2 or len(pids) != feats.shape[0]:
        raise ValueError(f"features must be (N, D) with one pid per row, got {tuple(feats.shape)} and {len(pids)} pids")
    if num_draws < 1:
        raise ValueError(f"num_draws must be >= 1, got {num_draws}")
    no_cameras = np.zeros(len(pids), dtype=np.int64)
    draws = []
    for query, gallery in vehicleid_splits(pids, num_draws, seed):
        query_feats = feats[torch.as_tensor(query, device=feats.device)]
        gallery_feats = feats[torch.as_tensor(gallery, device=feats.device)]
        dist = host_distance(query_feats, gallery_feats, metric, max_bytes)
        draws.append(
            rank_metrics(
                dist,
                pids[query],
                pids[gallery],
                no_cameras[query],
                no_cameras[gallery],
                max_rank=max_rank,
                remove_same_camera=False,
            )
        )
    return {
        "cmc": np.mean([d["cmc"] for d in draws], axis=0),
        "mAP": float(np.mean([d["mAP"] for d in draws])),
        "mINP": float(np.mean([d["mINP"] for d in draws])),
        "num_valid_queries": draws[0]["num_valid_queries"],
        "num_valid_ids": draws[0]["num_valid_ids"],
    }


def metric_summary(metrics: dict) -> dict:
    """The reported form of a ``rank_metrics`` / ``vehicleid_metrics`` result: Python floats, rank-1/5/10
    (CMC is flat past the gallery size, so rank-k for k beyond the curve is its last value) and the CMC
    curve as a list."""
    cmc = [float(x) for x in metrics["cmc"]]
    summary = {"mAP": float(metrics["mAP"])}
    summary.update({f"rank{k}": cmc[min(k, len(cmc)) - 1] for k in REPORTED_RANKS})
    summary.update({"mINP": float(metrics["mINP"]), "cmc": cmc, "num_valid_queries": int(metrics["num_valid_queries"])})
    if "num_valid_ids" in metrics:
        summary["num_valid_ids"] = int(metrics["num_valid_ids"])
    return summary


# ------------------------------------------------------------------------------------------------ helpers
def host_array(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def _vector(x, name: str, length: int, dist_shape: tuple) -> np.ndarray:
    arr = host_array(x)
    if arr.shape != (length,):
        raise ValueError(f"{name} has shape {arr.shape}, expected ({length},) for distmat of shape {dist_shape}")
    return arr


def ragged_arange(starts: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Concatenated ``arange(s, s + c)`` for each (s, c), and the segment each element came from."""
    counts = np.asarray(counts, dtype=np.int64)
    segment = np.repeat(np.arange(len(counts)), counts)
    offset = np.cumsum(counts) - counts
    return np.asarray(starts, dtype=np.int64)[segment] + np.arange(len(segment)) - offset[segment], segment
