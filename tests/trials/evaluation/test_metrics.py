"""ReID evaluation: the Market-1501 ranking protocol, distances, VehicleID draws and `evaluate`.

Hand-made cases give the answers in comments: "m" a match, "n" a non-match, ranks 1-based, after the
same-id same-camera images are removed.
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from trials.evaluation import (
    evaluate,
    extract_features,
    metric_summary,
    pairwise_distance,
    rank_metrics,
    vehicleid_metrics,
    vehicleid_splits,
)
from trials.evaluation.metrics import query_scores


def reference_rank_metrics(distmat, q_pids, g_pids, q_camids, g_camids, max_rank=50, remove_same_camera=True):
    """The protocol written out query by query with Python lists (obviously correct, slow)."""
    num_query, num_gallery = distmat.shape
    cmc_sum, aps, inps = np.zeros(min(max_rank, num_gallery)), [], []
    for i in range(num_query):
        ranking = sorted(range(num_gallery), key=lambda j: distmat[i][j])  # Python's sort is stable
        if remove_same_camera:
            ranking = [j for j in ranking if not (g_pids[j] == q_pids[i] and g_camids[j] == q_camids[i])]
        match_ranks = [r + 1 for r, j in enumerate(ranking) if g_pids[j] == q_pids[i]]
        if not match_ranks:
            continue
        cmc_sum += [1.0 if match_ranks[0] <= k else 0.0 for k in range(1, len(cmc_sum) + 1)]
        aps.append(sum((hits + 1) / r for hits, r in enumerate(match_ranks)) / len(match_ranks))
        inps.append(len(match_ranks) / match_ranks[-1])
    return {"cmc": cmc_sum / len(aps), "mAP": np.mean(aps), "mINP": np.mean(inps), "num_valid_queries": len(aps)}


def assert_metrics_equal(actual, expected, atol=1e-6):
    assert actual["num_valid_queries"] == expected["num_valid_queries"]
    np.testing.assert_allclose(actual["cmc"], expected["cmc"], atol=atol)
    assert actual["mAP"] == pytest.approx(expected["mAP"], abs=atol)
    assert actual["mINP"] == pytest.approx(expected["mINP"], abs=atol)


def one_query(gallery, q_pid=1, q_cam=0, **kwargs):
    """rank_metrics for one query against a gallery given as (pid, camera, distance) triples."""
    pids, cams, dists = (np.array(column) for column in zip(*gallery, strict=True))
    return rank_metrics(dists[None, :], [q_pid], pids, [q_cam], cams, **kwargs)


# Query id 1 on camera 0; gallery as (pid, camera, distance), already in distance order.
GALLERY_A = [(2, 1, 0.1), (1, 1, 0.2), (1, 0, 0.3), (3, 1, 0.4), (1, 2, 0.5)]


# ------------------------------------------------------------------------------------ hand-made cases
def test_same_camera_matches_are_removed():
    # Index 2 (id 1, camera 0) is removed: n m n m -> matches at ranks 2 and 4.
    # AP = (1/2 + 2/4) / 2 = 0.5; INP = 2 matches / rank 4 = 0.5; first match at rank 2.
    result = one_query(GALLERY_A)
    assert result["mAP"] == pytest.approx(0.5)
    assert result["mINP"] == pytest.approx(0.5)
    np.testing.assert_allclose(result["cmc"], [0, 1, 1, 1, 1])
    assert result["num_valid_queries"] == 1
    assert isinstance(result["mAP"], float) and isinstance(result["mINP"], float)
    assert isinstance(result["num_valid_queries"], int)


def test_without_camera_removal_every_match_counts():
    # n m m n m -> ranks 2, 3, 5: AP = (1/2 + 2/3 + 3/5) / 3 = 53/90; INP = 3/5.
    result = one_query(GALLERY_A, remove_same_camera=False)
    assert result["mAP"] == pytest.approx(53 / 90)
    assert result["mINP"] == pytest.approx(3 / 5)
    np.testing.assert_allclose(result["cmc"], [0, 1, 1, 1, 1])


def test_distractors_are_negatives_even_on_the_query_camera():
    # Query id 5, camera 0. Distractors (id 0) lead, one on camera 0, and stay: d d m n m -> ranks 3, 5.
    # AP = (1/3 + 2/5) / 2 = 11/30; INP = 2/5.
    result = one_query([(0, 1, 0.1), (0, 0, 0.2), (5, 1, 0.3), (7, 1, 0.4), (5, 1, 0.9)], q_pid=5)
    assert result["mAP"] == pytest.approx(11 / 30)
    assert result["mINP"] == pytest.approx(2 / 5)
    np.testing.assert_allclose(result["cmc"], [0, 0, 1, 1, 1])


def test_queries_without_a_remaining_match_are_skipped():
    # Query 0 is GALLERY_A's query (AP 0.5); query 1's id 42 is not in the gallery; query 2 (id 2,
    # camera 1) has its only gallery image on its own camera. Only query 0 counts.
    pids, cams, dists = (np.array(column) for column in zip(*GALLERY_A, strict=True))
    result = rank_metrics(np.stack([dists] * 3), [1, 42, 2], pids, [0, 0, 1], cams)
    assert result["num_valid_queries"] == 1
    assert result["mAP"] == pytest.approx(0.5)
    np.testing.assert_allclose(result["cmc"], [0, 1, 1, 1, 1])


def test_scores_average_over_valid_queries():
    # GALLERY_A's query (AP 1/2, INP 1/2, first match rank 2) and a query of id 3 on camera 0 whose only
    # gallery image is 4th (AP 1/4, INP 1/4, first match rank 4).
    pids, cams, dists = (np.array(column) for column in zip(*GALLERY_A, strict=True))
    result = rank_metrics(np.stack([dists] * 2), [1, 3], pids, [0, 0], cams)
    assert result["mAP"] == pytest.approx((1 / 2 + 1 / 4) / 2)
    assert result["mINP"] == pytest.approx((1 / 2 + 1 / 4) / 2)
    np.testing.assert_allclose(result["cmc"], [0, 0.5, 0.5, 1, 1])


@pytest.mark.parametrize(
    ("gallery", "expected_ap", "expected_inp"),
    [
        # All distances equal: gallery order decides. n m m n -> ranks 2, 3: AP (1/2 + 2/3)/2, INP 2/3.
        ([(4, 1, 0.5), (1, 1, 0.5), (1, 2, 0.5), (4, 2, 0.5)], 7 / 12, 2 / 3),
        # The same images listed differently: m n n m -> ranks 1, 4: AP (1 + 2/4)/2, INP 2/4.
        ([(1, 1, 0.5), (4, 1, 0.5), (4, 2, 0.5), (1, 2, 0.5)], 3 / 4, 1 / 2),
        # Two tie groups: 0.1 -> indices 1 (n), 3 (m); 0.2 -> indices 0 (m), 2 (n): n m m n.
        ([(1, 1, 0.2), (3, 1, 0.1), (3, 2, 0.2), (1, 1, 0.1)], 7 / 12, 2 / 3),
        # A removed image tied with, and listed before, the match does not push it down: [n m] -> rank 2.
        ([(1, 0, 0.5), (3, 1, 0.5), (1, 1, 0.5)], 1 / 2, 1 / 2),
    ],
)
def test_ties_are_broken_by_gallery_index(gallery, expected_ap, expected_inp):
    result = one_query(gallery)
    assert result["mAP"] == pytest.approx(expected_ap)
    assert result["mINP"] == pytest.approx(expected_inp)


def test_cmc_length_is_max_rank_capped_by_gallery_size():
    # One match, 4th: CMC is 0 up to rank 3 and AP = INP = 1/4 whatever max_rank is.
    gallery = [(2, 1, 0.1), (3, 1, 0.2), (4, 1, 0.3), (1, 1, 0.4)]
    assert len(one_query(gallery)["cmc"]) == 4
    assert len(one_query(gallery, max_rank=2)["cmc"]) == 2
    capped = one_query(gallery, max_rank=3)
    np.testing.assert_allclose(capped["cmc"], [0, 0, 0])
    assert capped["mAP"] == pytest.approx(1 / 4) and capped["mINP"] == pytest.approx(1 / 4)


# ------------------------------------------------------------------------------- against the reference
@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("chunk_size", [1, 7, 50, 64])
def test_equals_reference_on_random_data_with_many_ties(seed, chunk_size):
    # Integer distances 0..7 over 400 gallery images: nearly every match is tied with dozens of others.
    rng = np.random.default_rng(seed)
    distmat = rng.integers(0, 8, (50, 400)).astype(np.float32)
    args = (distmat, rng.integers(0, 10, 50), rng.integers(0, 10, 400), rng.integers(0, 3, 50), rng.integers(0, 3, 400))
    assert_metrics_equal(rank_metrics(*args, chunk_size=chunk_size), reference_rank_metrics(*args))
    assert_metrics_equal(
        rank_metrics(*args, chunk_size=chunk_size, remove_same_camera=False, max_rank=20),
        reference_rank_metrics(*args, remove_same_camera=False, max_rank=20),
    )


@pytest.mark.parametrize("seed", range(3))
def test_equals_reference_on_continuous_distances_and_sparse_ids(seed):
    # float64 distances, 200 ids plus distractors (id 0), 6 cameras, 53 queries (chunk boundary inside):
    # about 1.5 gallery images per id, so many queries have no remaining match.
    rng = np.random.default_rng(100 + seed)
    distmat = rng.random((53, 300))
    args = (
        distmat,
        rng.integers(1, 201, 53),
        rng.integers(0, 201, 300),
        rng.integers(0, 6, 53),
        rng.integers(0, 6, 300),
    )
    expected = reference_rank_metrics(*args)
    assert 10 < expected["num_valid_queries"] < 43
    result = rank_metrics(*args, chunk_size=16)
    assert_metrics_equal(result, expected)
    # the per-query values each score is the mean of (what the validation intervals resample)
    scores = query_scores(result["per_query"])
    assert scores["mAP"].mean() == pytest.approx(result["mAP"])
    assert scores["mINP"].mean() == pytest.approx(result["mINP"])
    for k in (1, 5, 10):
        assert scores[f"rank{k}"].mean() == pytest.approx(result["cmc"][k - 1])
    assert result["num_valid_ids"] == len(set(result["per_query"]["pid"])) <= result["num_valid_queries"]


def test_result_does_not_depend_on_chunks_or_threads():
    rng = np.random.default_rng(8)
    distmat = rng.integers(0, 20, (90, 200)).astype(np.float32)
    args = (distmat, rng.integers(0, 15, 90), rng.integers(0, 15, 200), rng.integers(0, 3, 90), rng.integers(0, 3, 200))
    serial = rank_metrics(*args, num_threads=1)
    assert_metrics_equal(rank_metrics(*args, chunk_size=7, num_threads=3), serial, atol=1e-15)


def test_accepts_torch_tensors():
    rng = np.random.default_rng(7)
    distmat = rng.random((20, 80)).astype(np.float32)
    arrays = (distmat, rng.integers(0, 5, 20), rng.integers(0, 5, 80), rng.integers(0, 2, 20), rng.integers(0, 2, 80))
    tensors = [torch.from_numpy(a) for a in arrays]
    assert_metrics_equal(rank_metrics(*tensors), rank_metrics(*arrays), atol=0)


# --------------------------------------------------------------------------------------------- errors
def test_no_valid_query_is_an_error_that_says_why():
    with pytest.raises(ValueError, match=r"no query has a match.*2 queries, 3 gallery"):
        rank_metrics(np.zeros((2, 3)), [7, 8], [1, 2, 3], [0, 0], [1, 1, 1])


@pytest.mark.parametrize(
    ("name", "args", "message"),
    [
        ("q_pids", (np.zeros((2, 3)), [1], [1, 2, 3], [0, 0], [1, 1, 1]), r"q_pids has shape \(1,\), expected \(2,\)"),
        (
            "g_camids",
            (np.zeros((2, 3)), [1, 2], [1, 2, 3], [0, 0], [1, 1]),
            r"g_camids has shape \(2,\), expected \(3,\)",
        ),
        ("distmat", (np.zeros(3), [1], [1, 2, 3], [0], [1, 1, 1]), r"distmat must be 2-D.*\(3,\)"),
        ("nan", (np.array([[0.1, np.nan]]), [1], [1, 2], [0], [1, 1]), "NaN"),
    ],
)
def test_bad_inputs_are_named(name, args, message):
    with pytest.raises(ValueError, match=message):
        rank_metrics(*args)


# ------------------------------------------------------------------------------------------ distances
def features(seed, rows, dim=16, scale=3.0):
    return torch.randn(rows, dim, generator=torch.Generator().manual_seed(seed)) * scale


def test_euclidean_is_on_normalised_features_by_default():
    q, g = features(0, 37), features(1, 53)
    dist = pairwise_distance(q, g, chunk_size=10)
    assert dist.dtype == torch.float32 and dist.shape == (37, 53) and dist.device == q.device
    torch.testing.assert_close(dist, torch.cdist(F.normalize(q), F.normalize(g)), atol=1e-5, rtol=0)
    raw = pairwise_distance(q, g, normalize=False, chunk_size=10)
    torch.testing.assert_close(raw, torch.cdist(q, g), atol=1e-4, rtol=1e-5)


def test_cosine_distance_is_one_minus_cosine():
    q, g = features(2, 9).double(), features(3, 11).double()
    expected = 1 - (q @ g.T) / (q.norm(dim=1, keepdim=True) * g.norm(dim=1))
    torch.testing.assert_close(pairwise_distance(q, g, "cosine", chunk_size=4).double(), expected, atol=1e-6, rtol=0)


def test_distance_of_a_feature_to_itself_is_zero_not_nan():
    q = features(4, 30)
    dist = pairwise_distance(q, q)
    assert torch.isfinite(dist).all() and (dist >= 0).all()
    assert dist.diagonal().abs().max() < 1e-3


def test_distance_accepts_numpy_and_rejects_bad_arguments():
    q = np.random.default_rng(0).random((4, 8)).astype(np.float32)
    assert isinstance(pairwise_distance(q, q), torch.Tensor)
    with pytest.raises(ValueError, match="metric"):
        pairwise_distance(q, q, metric="manhattan")
    with pytest.raises(ValueError, match=r"\(4, 8\) and \(4, 7\)"):
        pairwise_distance(q, q[:, :7])


# ------------------------------------------------------------------------------------------ VehicleID
def identity_features(pids, dim=32, noise=0.01, seed=0):
    """Each id its own direction plus a little noise: perfect retrieval."""
    rng = np.random.default_rng(seed)
    return torch.tensor(np.eye(dim)[pids] + noise * rng.normal(size=(len(pids), dim)), dtype=torch.float32)


PIDS = np.repeat(np.arange(12), [3, 4, 2, 5, 3, 3, 4, 2, 6, 3, 1, 4])  # id 10 has a single image


def test_vehicleid_draws_one_gallery_image_per_id():
    for query, gallery in vehicleid_splits(PIDS, num_draws=5, seed=3):
        assert sorted(PIDS[gallery]) == list(range(12))
        assert sorted(np.concatenate([query, gallery])) == list(range(len(PIDS)))


def test_vehicleid_draws_are_seeded():
    a, b, c = (vehicleid_splits(PIDS, num_draws=4, seed=s) for s in (0, 0, 1))
    assert all(np.array_equal(x[1], y[1]) for x, y in zip(a, b, strict=True))
    assert not all(np.array_equal(x[1], y[1]) for x, y in zip(a, c, strict=True))
    assert len({tuple(gallery) for _, gallery in a}) > 1  # the draws differ from each other


def test_vehicleid_metrics_average_the_draws_and_are_deterministic():
    feats = identity_features(PIDS, noise=2.0)  # noisy enough for imperfect, draw-dependent rankings
    result = vehicleid_metrics(feats, PIDS, num_draws=4, seed=5)
    per_draw = [
        rank_metrics(pairwise_distance(feats[q], feats[g]), PIDS[q], PIDS[g], 0 * q, 0 * g, remove_same_camera=False)
        for q, g in vehicleid_splits(PIDS, num_draws=4, seed=5)
    ]
    assert result["mAP"] == pytest.approx(np.mean([d["mAP"] for d in per_draw]))
    assert result["mINP"] == pytest.approx(np.mean([d["mINP"] for d in per_draw]))
    np.testing.assert_allclose(result["cmc"], np.mean([d["cmc"] for d in per_draw], axis=0))
    assert result["num_valid_queries"] == len(PIDS) - 12
    assert vehicleid_metrics(feats, PIDS, num_draws=4, seed=5)["mAP"] == result["mAP"]
    assert 0 < result["mAP"] < 1


def test_vehicleid_perfect_features_score_one():
    result = vehicleid_metrics(identity_features(PIDS), PIDS)
    assert result["mAP"] == pytest.approx(1.0) and result["mINP"] == pytest.approx(1.0)
    np.testing.assert_allclose(result["cmc"], 1.0)
    assert len(result["cmc"]) == 12  # the gallery holds one image per id


# ------------------------------------------------------------------------------ extract and evaluate
class RecordingModel(torch.nn.Module):
    """A linear embedding that remembers the mode it ran in."""

    def __init__(self, dim):
        super().__init__()
        self.embed = torch.nn.Linear(dim, dim)
        torch.nn.init.eye_(self.embed.weight)
        torch.nn.init.zeros_(self.embed.bias)
        self.modes = []

    def forward(self, images):
        self.modes.append(self.training)
        return self.embed(images.flatten(1))


def loader(pids, camids, seed, with_paths=False):
    images = identity_features(pids, dim=16, seed=seed).reshape(len(pids), 1, 4, 4)
    columns = [images, torch.as_tensor(pids), torch.as_tensor(camids)]
    if with_paths:
        columns.append(torch.arange(len(pids)))  # stands for any extra item such as image paths
    return DataLoader(TensorDataset(*columns), batch_size=5)


def test_extract_features_runs_in_eval_mode_without_grad_and_restores_mode():
    model = RecordingModel(16).train()
    pids, camids = np.arange(12) % 6, np.arange(12) % 3
    feats, got_pids, got_camids = extract_features(model, loader(pids, camids, 0, with_paths=True), "cpu")
    assert feats.shape == (12, 16) and feats.dtype == torch.float32 and not feats.requires_grad
    np.testing.assert_array_equal(got_pids, pids)
    np.testing.assert_array_equal(got_camids, camids)
    assert model.modes == [False, False, False] and model.training


@pytest.mark.parametrize(("metric", "rerank"), [("euclidean", False), ("cosine", False), ("euclidean", True)])
def test_evaluate_reports_the_trial_keys(metric, rerank):
    q_pids, g_pids = np.arange(6), np.repeat(np.arange(8), 3)  # ids 6, 7: gallery-only distractors
    result = evaluate(
        RecordingModel(16),
        loader(q_pids, np.zeros(6, dtype=np.int64), seed=1),
        loader(g_pids, np.ones(24, dtype=np.int64), seed=2),
        torch.device("cpu"),
        metric=metric,
        rerank=rerank,
    )
    assert list(result) == ["mAP", "rank1", "rank5", "rank10", "mINP", "cmc", "num_valid_queries", "num_valid_ids"]
    assert result["mAP"] == pytest.approx(1.0) and result["rank1"] == 1.0 and result["mINP"] == pytest.approx(1.0)
    assert isinstance(result["cmc"], list) and len(result["cmc"]) == 24
    assert all(isinstance(result[k], float) for k in ("mAP", "rank1", "rank5", "rank10", "mINP"))
    assert result["num_valid_queries"] == 6 and result["num_valid_ids"] == 6


def test_summary_rank_k_beyond_the_gallery_is_the_last_cmc_value():
    summary = metric_summary({"cmc": np.array([0.25, 0.5, 0.75]), "mAP": 0.5, "mINP": 0.25, "num_valid_queries": 4})
    assert (summary["rank1"], summary["rank5"], summary["rank10"]) == (0.25, 0.75, 0.75)
    assert summary["cmc"] == [0.25, 0.5, 0.75]


@pytest.mark.cuda
def test_evaluate_on_cuda_matches_cpu():
    q_pids, g_pids = np.arange(6), np.repeat(np.arange(8), 3)
    q_loader = loader(q_pids, np.zeros(6, dtype=np.int64), seed=1)
    g_loader = loader(g_pids, np.ones(24, dtype=np.int64), seed=2)
    on_cpu = evaluate(RecordingModel(16), q_loader, g_loader, torch.device("cpu"))
    on_cuda = evaluate(RecordingModel(16).cuda(), q_loader, g_loader, torch.device("cuda"))
    assert on_cuda["mAP"] == pytest.approx(on_cpu["mAP"]) and on_cuda["cmc"] == pytest.approx(on_cpu["cmc"])
