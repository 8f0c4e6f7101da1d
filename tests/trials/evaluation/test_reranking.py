"""k-reciprocal re-ranking (Zhong et al. CVPR 2017) against a loop-by-loop transcription of the paper."""

import numpy as np
import pytest
import torch

from trials.evaluation import pairwise_distance, rank_metrics, re_ranking


def reference_re_ranking(q_g, q_q, g_g, k1, k2, lambda_value):
    """The paper step by step on dense matrices, with Python sets and loops (obviously correct, slow)."""
    num_query = len(q_g)
    dist = np.block([[q_q, q_g], [q_g.T, g_g]]).astype(np.float64)
    n = len(dist)
    dist = dist / dist.max(axis=1, keepdims=True)  # each row scaled by its maximum
    order = np.argsort(dist, axis=1, kind="stable")
    k_half = int(np.around(k1 / 2))

    def reciprocal(p, k):  # R(p, k): q in p's top k+1 and p in q's top k+1
        return {q for q in order[p, : k + 1] if p in order[q, : k + 1]}

    v = np.zeros((n, n))
    for p in range(n):
        r_p = reciprocal(p, k1)
        grown = set(r_p)
        for q in r_p:
            r_q = reciprocal(q, k_half)
            if len(r_q & r_p) > 2 / 3 * len(r_q):
                grown |= r_q
        cols = sorted(grown)
        weights = np.exp(-dist[p, cols])
        v[p, cols] = weights / weights.sum()
    if k2 != 1:
        v = np.stack([v[order[p, :k2]].mean(axis=0) for p in range(n)])
    jaccard = np.zeros((num_query, n - num_query))
    for i in range(num_query):
        for g in range(n - num_query):
            a, b = v[i], v[num_query + g]
            jaccard[i, g] = 1 - np.minimum(a, b).sum() / np.maximum(a, b).sum()
    return (1 - lambda_value) * jaccard + lambda_value * dist[:num_query, num_query:]


def clustered(seed, num_ids, per_id, dim=16, noise=0.9):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(num_ids, dim))
    pids = np.repeat(np.arange(num_ids), per_id)
    return torch.tensor(centres[pids] + noise * rng.normal(size=(len(pids), dim)), dtype=torch.float32), pids


def squared_distances(feats, num_query):
    q, g = feats[:num_query], feats[num_query:]
    sq = lambda a, b: (pairwise_distance(a, b).double() ** 2).numpy()  # noqa: E731
    q_q, g_g = sq(q, q), sq(g, g)
    return sq(q, g), (q_q + q_q.T) / 2, (g_g + g_g.T) / 2  # exact symmetry, as the paper assumes


@pytest.mark.parametrize(
    ("seed", "k1", "k2", "lambda_value"), [(0, 20, 6, 0.3), (1, 6, 3, 0.3), (2, 5, 1, 0.0), (3, 9, 4, 1.0)]
)
def test_matches_the_paper_step_by_step(seed, k1, k2, lambda_value):
    feats, _ = clustered(seed, num_ids=12, per_id=6)
    q_g, q_q, g_g = squared_distances(feats, num_query=14)
    ours = re_ranking(q_g, q_q, g_g, k1=k1, k2=k2, lambda_value=lambda_value)
    expected = reference_re_ranking(q_g, q_q, g_g, k1, k2, lambda_value)
    assert ours.shape == (14, 58)
    np.testing.assert_allclose(ours, expected, atol=1e-9)


def test_ties_follow_the_stable_order():
    # Duplicated features make many exactly equal distances; neighbour lists then follow gallery index.
    feats, _ = clustered(4, num_ids=6, per_id=5)
    feats = torch.cat([feats, feats[::2]])
    q_g, q_q, g_g = squared_distances(feats, num_query=8)
    np.testing.assert_allclose(
        re_ranking(q_g, q_q, g_g, k1=7, k2=3), reference_re_ranking(q_g, q_q, g_g, 7, 3, 0.3), atol=1e-9
    )


def test_keeps_float32_and_accepts_tensors():
    feats, _ = clustered(5, num_ids=5, per_id=4)
    q, g = feats[:6], feats[6:]
    out = re_ranking(pairwise_distance(q, g) ** 2, pairwise_distance(q, q) ** 2, pairwise_distance(g, g) ** 2, k1=4)
    assert isinstance(out, np.ndarray) and out.dtype == np.float32 and out.shape == (6, 14)
    assert np.isfinite(out).all() and (out >= 0).all()


def test_improves_map_on_noisy_clusters():
    # Six noisy views per identity: the neighbourhood structure carries what a single distance misses,
    # which is the paper's point. One query per id (camera 0), the other five are the gallery (camera 1).
    feats, pids = clustered(6, num_ids=40, per_id=6, dim=32, noise=1.6)
    is_query = np.arange(len(pids)) % 6 == 0
    q, g = feats[is_query], feats[~is_query]
    q_cams, g_cams = np.zeros(is_query.sum()), np.ones((~is_query).sum())
    before = rank_metrics(pairwise_distance(q, g), pids[is_query], pids[~is_query], q_cams, g_cams)
    reranked = re_ranking(pairwise_distance(q, g) ** 2, pairwise_distance(q, q) ** 2, pairwise_distance(g, g) ** 2)
    after = rank_metrics(reranked, pids[is_query], pids[~is_query], q_cams, g_cams)
    assert after["mAP"] > before["mAP"] + 0.03  # 0.346 -> 0.396


def test_rejects_mismatched_blocks():
    with pytest.raises(ValueError, match="g_g_dist"):
        re_ranking(np.zeros((2, 3)), np.zeros((2, 2)), np.zeros((2, 2)))
