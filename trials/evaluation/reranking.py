"""k-reciprocal re-ranking of ReID distances (Zhong et al., CVPR 2017), vectorised over sparse neighbour sets."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from trials.evaluation.metrics import host_array, ragged_arange

BLOCK_ROWS = 512  # rows of the joint distance matrix `re_ranking` holds at once, in float64


def re_ranking(q_g_dist, q_q_dist, g_g_dist, k1: int = 20, k2: int = 6, lambda_value: float = 0.3) -> np.ndarray:
    """k-reciprocal re-ranking (Zhong et al., "Re-ranking Person Re-identification with k-reciprocal
    Encoding", CVPR 2017); returns the re-ranked (num_query, num_gallery) distances as a numpy array.

    On the joint set of queries and gallery (symmetric distances; each row scaled by its maximum):
    R(p, k) = the k-reciprocal neighbours of p (q in p's top k+1 and p in q's); R*(p) = R(p, k1) grown by
    R(q, round(k1/2)) for every q in it that shares more than 2/3 of that set with R(p, k1); p's vector V_p
    puts exp(-d(p, g)) on R*(p), normalised to sum 1, then is averaged over p's top k2 neighbours (local
    query expansion, skipped when k2 == 1); Jaccard distance 1 - sum min(V_p, V_g) / sum max(V_p, V_g);
    final = (1 - lambda) * Jaccard + lambda * scaled original. Neighbour lists use the stable order.

    Pass distances as they should be weighted: the authors' code squares Euclidean distances first, so
    use squared Euclidean or cosine distances (on normalised features these differ by a factor of 2,
    which the row scaling removes); ``evaluate`` does this. V is kept sparse (about k1 entries per row),
    so memory is the inputs, the output and O((num_query + num_gallery) * k1 * k2) for V.
    """
    q_g, q_q, g_g = (host_array(x) for x in (q_g_dist, q_q_dist, g_g_dist))  # no float64 copies
    out_dtype = np.result_type(q_g.dtype, np.float32)
    num_query, num_gallery = q_g.shape
    if q_q.shape != (num_query, num_query) or g_g.shape != (num_gallery, num_gallery):
        raise ValueError(
            f"q_q_dist must be {(num_query, num_query)} and g_g_dist {(num_gallery, num_gallery)} "
            f"for q_g_dist {q_g.shape}, got {q_q.shape} and {g_g.shape}"
        )
    if k1 < 1 or k2 < 1:
        raise ValueError(f"k1 and k2 must be >= 1, got k1={k1}, k2={k2}")
    n = num_query + num_gallery
    k1 = min(k1, n - 1)
    k_half = int(round(k1 / 2))  # round half to even, like the authors' np.around
    k2 = min(k2, n)

    def rows(a: int, b: int) -> np.ndarray:  # rows a..b-1 of the joint distance matrix
        parts = []
        if a < num_query:
            parts.append(np.hstack([q_q[a : min(b, num_query)], q_g[a : min(b, num_query)]]))
        if b > num_query:
            lo, hi = max(a, num_query) - num_query, b - num_query
            parts.append(np.hstack([q_g[:, lo:hi].T, g_g[lo:hi]]))
        return np.vstack(parts).astype(np.float64)

    # Each row's scale and its stable top-(k1+1) neighbours, a chunk of rows at a time.
    width = max(k1 + 1, k2)
    row_max = np.empty(n)
    top = np.empty((n, width), dtype=np.int64)
    for a in range(0, n, BLOCK_ROWS):
        block = rows(a, min(a + BLOCK_ROWS, n))
        row_max[a : a + len(block)] = np.where(block.max(axis=1) > 0, block.max(axis=1), 1.0)  # all-zero rows
        top[a : a + len(block)] = _stable_smallest(block / row_max[a : a + len(block), None], width)

    def scaled_dist(i: np.ndarray, j: np.ndarray) -> np.ndarray:
        out = np.empty(len(i))
        qi, qj = i < num_query, j < num_query
        out[qi & qj] = q_q[i[qi & qj], j[qi & qj]]
        out[qi & ~qj] = q_g[i[qi & ~qj], j[qi & ~qj] - num_query]
        out[~qi & qj] = q_g[j[~qi & qj], i[~qi & qj] - num_query]
        out[~qi & ~qj] = g_g[i[~qi & ~qj] - num_query, j[~qi & ~qj] - num_query]
        return out / row_max[i]

    # R(p, k1) and R(p, k1/2) as sorted pair codes p * n + q.
    recip = _reciprocal_pairs(top[:, : k1 + 1], n)
    recip_half = _reciprocal_pairs(top[:, : k_half + 1], n)

    # Expansion: candidate q of R(p, k1) brings R(q, k1/2) when > 2/3 of it already lies in R(p, k1).
    p, q = np.divmod(recip, n)
    half_start = np.searchsorted(recip_half, np.arange(n + 1) * n)
    half_count = np.diff(half_start)
    half_idx, pair = ragged_arange(half_start[q], half_count[q])
    brought = recip_half[half_idx] % n
    shared = np.bincount(pair, weights=_contains(recip, p[pair] * n + brought), minlength=len(recip))
    accepted = 3 * shared > 2 * half_count[q]
    grown = np.unique(np.concatenate([recip, p[pair][accepted[pair]] * n + brought[accepted[pair]]]))

    # Sparse V (sorted by row, then column) with exp(-d) weights normalised per row.
    v_row, v_col = np.divmod(grown, n)
    weight = np.exp(-scaled_dist(v_row, v_col))
    v_val = weight / np.bincount(v_row, weights=weight, minlength=n)[v_row]
    if k2 > 1:  # local query expansion: V_p <- mean of V over p's top k2
        v_start = np.searchsorted(v_row, np.arange(n + 1))
        src = top[:, :k2].reshape(-1)
        idx, pair = ragged_arange(v_start[src], np.diff(v_start)[src])
        codes, inverse = np.unique((pair // k2) * n + v_col[idx], return_inverse=True)
        v_val = np.bincount(inverse, weights=v_val[idx] / k2)
        v_row, v_col = np.divmod(codes, n)

    # Jaccard: sum over columns of min(V_query, V_gallery), joined on the column, a few queries at a time.
    g_entries = np.flatnonzero(v_row >= num_query)
    g_entries = g_entries[np.argsort(v_col[g_entries], kind="stable")]
    g_start = np.searchsorted(v_col[g_entries], np.arange(n + 1))
    final = np.empty((num_query, num_gallery), dtype=out_dtype)
    q_end = np.searchsorted(v_row, np.arange(num_query + 1))
    for a in range(0, num_query, 256):
        b = min(a + 256, num_query)
        entries = np.arange(q_end[a], q_end[b])
        cols = v_col[entries]
        idx, pair = ragged_arange(g_start[cols], np.diff(g_start)[cols])
        other = g_entries[idx]
        flat = (v_row[entries[pair]] - a) * num_gallery + v_row[other] - num_query
        overlap = np.minimum(v_val[entries[pair]], v_val[other])
        min_sum = np.bincount(flat, weights=overlap, minlength=(b - a) * num_gallery).reshape(b - a, num_gallery)
        jaccard = 1.0 - min_sum / (2.0 - min_sum)  # V rows sum to 1, so sum max = 2 - sum min
        final[a:b] = (1.0 - lambda_value) * jaccard + lambda_value * q_g[a:b] / row_max[a:b, None]
    return final


def rerank_bytes(num_query: int, num_gallery: int) -> int:
    """Host memory `re_ranking` needs at this size: float32 query x gallery distances and result, query x
    query and gallery x gallery distances, and a few float64 blocks of `BLOCK_ROWS` joint rows."""
    n = num_query + num_gallery
    return 4 * (2 * num_query * num_gallery + num_query**2 + num_gallery**2) + 3 * 8 * BLOCK_ROWS * n


def available_memory() -> int | None:
    """Bytes of host memory available now (Linux's MemAvailable), None where it cannot be read."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def check_rerank_memory(num_query: int, num_gallery: int, available: int | None = None) -> None:
    """Refuse, before any work, a re-ranking that does not fit in host memory (`available`: default what the
    machine has now). The gallery x gallery distances grow with the square of the gallery: MSMT17's test
    split (11,659 x 82,161) needs about 34 GiB."""
    need = rerank_bytes(num_query, num_gallery)
    available = available_memory() if available is None else available
    if available is not None and need > available:
        raise ValueError(
            f"rerank: re-ranking {num_query:,} queries against {num_gallery:,} gallery images needs about "
            f"{need / 2**30:.1f} GiB of host memory (the gallery x gallery distances alone are "
            f"{4 * num_gallery**2 / 2**30:.1f} GiB), but {available / 2**30:.1f} GiB is available here; score "
            "without re-ranking (rerank: false, or no --rerank) or on a machine with more memory")


def _stable_smallest(block: np.ndarray, k: int) -> np.ndarray:
    """Column indices of the k smallest values of each row in stable order (ties: lower index first)."""
    kth = np.partition(block, k - 1, axis=1)[:, k - 1]
    row, col = np.nonzero(block <= kth[:, None])  # at least k per row; more only with ties at the k-th
    order = np.lexsort((col, block[row, col], row))
    row, col = row[order], col[order]
    first = np.searchsorted(row, np.arange(len(block)))
    return col[first[:, None] + np.arange(k)]


def _reciprocal_pairs(neighbours: np.ndarray, n: int) -> np.ndarray:
    """Sorted codes p * n + q of the pairs where q is among p's neighbours and p among q's."""
    p = np.repeat(np.arange(n), neighbours.shape[1])
    q = neighbours.reshape(-1)
    codes = np.sort(p * n + q)
    return codes[_contains(codes, (codes % n) * n + codes // n)]


def _contains(sorted_codes: np.ndarray, codes: np.ndarray) -> np.ndarray:
    if len(sorted_codes) == 0:
        return np.zeros(len(codes), dtype=bool)
    at = np.minimum(np.searchsorted(sorted_codes, codes), len(sorted_codes) - 1)
    return sorted_codes[at] == codes
