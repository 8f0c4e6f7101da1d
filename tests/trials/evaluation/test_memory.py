"""Evaluation within a device-memory bound: distances computed in row chunks and gathered on the host give
the same numbers as one whole matrix; a re-ranking that cannot fit in host memory is refused before any work;
the last epoch runs the network over the source test split once for scoring and pictures together."""

import numpy as np
import pytest
import torch

import spaces
from trials.config import make_config
from trials.data import ReIDDataset, Sample, load_dataset
from trials.data.splits import Splits
from trials.evaluation.features import score_features
from trials.evaluation.metrics import (
    DISTANCE_TEMPORARIES,
    chunk_rows,
    host_distance,
    metric_summary,
    pairwise_distance,
    rank_metrics,
)
from trials.evaluation.network_views import draw_network_views
from trials.evaluation.reranking import check_rerank_memory, re_ranking, rerank_bytes
from trials.evaluation.scoring import check_test_rerank, score_tests


def _features(seed, n, ids, dim=24):
    g = torch.Generator().manual_seed(seed)
    pids = torch.arange(n) % ids
    centres = torch.randn(ids, dim, generator=g)
    return centres[pids] + 0.8 * torch.randn(n, dim, generator=g), pids.numpy(), (torch.arange(n) % 3).numpy()


def test_chunk_rows_keep_the_temporaries_within_the_bound():
    assert chunk_rows(82_161, 2 * 2**30) == 3267  # MSMT17's gallery: 3,267 query rows per chunk under 2 GiB
    for gallery, bound in ((82_161, 2 * 2**30), (15_913, 2**28), (1000, 10**6), (50, 1)):
        rows = chunk_rows(gallery, bound)
        assert rows >= 1 and (rows == 1 or DISTANCE_TEMPORARIES * 4 * gallery * rows <= bound)
        assert rows == 1 or DISTANCE_TEMPORARIES * 4 * gallery * (rows + 1) > bound  # the largest that fits


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_chunked_host_distances_equal_the_whole_matrix(metric):
    q, _, _ = _features(0, 37, 9)
    g, _, _ = _features(1, 53, 9)
    whole = pairwise_distance(q, g, metric).numpy()
    for bound in (1, 4 * 53 * 2 * 5, 2**30):  # one row per chunk, five rows, all at once
        chunked = host_distance(q, g, metric, max_bytes=bound)
        assert chunked.dtype == np.float32 and chunked.shape == (37, 53)
        np.testing.assert_allclose(chunked, whole, rtol=0, atol=1e-6)
    np.testing.assert_allclose(host_distance(q, g, metric, max_bytes=1000, power=2), whole**2, rtol=1e-6,
                               atol=1e-6)


@pytest.mark.parametrize("rerank", [False, True])
def test_chunked_scoring_equals_scoring_one_whole_matrix(rerank):
    """What evaluation reports with the smallest chunks is what the whole on-device matrix gave."""
    query, gallery = _features(2, 30, 10), _features(3, 90, 12)
    q, g = query[0], gallery[0]
    if rerank:  # the former path: whole matrices on the device, squared, re-ranked
        whole = re_ranking(pairwise_distance(q, g) ** 2, pairwise_distance(q, q) ** 2, pairwise_distance(g, g) ** 2)
    else:
        whole = pairwise_distance(q, g)
    expected = metric_summary(rank_metrics(whole, query[1], gallery[1], query[2], gallery[2]))
    for bound in (1, 4 * 90 * 2 * 7, 2**30):
        got = score_features(query, gallery, rerank=rerank, max_bytes=bound)
        assert got["num_valid_queries"] == expected["num_valid_queries"]
        assert got["mAP"] == pytest.approx(expected["mAP"], abs=1e-6)
        assert got["cmc"] == pytest.approx(expected["cmc"], abs=1e-6)


def test_re_ranking_at_msmt17_size_is_refused_naming_the_size_and_the_memory():
    need = rerank_bytes(11_659, 82_161)
    assert 33 * 2**30 < need < 35 * 2**30  # the gallery x gallery distances alone are 25 GiB
    with pytest.raises(ValueError) as error:
        check_rerank_memory(11_659, 82_161, available=24 * 2**30)
    message = str(error.value)
    for part in ("11,659 queries", "82,161 gallery", "33.9 GiB", "25.1 GiB", "24.0 GiB", "rerank: false"):
        assert part in message, part
    check_rerank_memory(3368, 15_913, available=24 * 2**30)  # Market-1501's 1.6 GiB fits


def test_a_trial_refuses_such_a_re_ranking_before_training():
    """`run_retrain` checks its test splits right after loading them (VehicleID is never re-ranked)."""
    big = ReIDDataset("msmt17", train=[], query=[Sample(f"q{i}", i, 0) for i in range(11_659)],
                      gallery=[Sample(f"g{i}", i, 1) for i in range(82_161)])
    splits = Splits(source=big, sources=[big], train=[], val_query=[], val_gallery=[], target=None, num_classes=1)
    cfg = make_config("retrain", {"rerank": True, "dataset": "msmt17"})
    with pytest.raises(ValueError, match="82,161 gallery images needs about 33.9 GiB"):
        check_test_rerank(splits, cfg, available=24 * 2**30)
    check_test_rerank(splits, cfg, available=40 * 2**30)
    check_test_rerank(splits, make_config("retrain", {"rerank": False}), available=1)  # nothing re-ranked


@pytest.mark.slow
def test_the_last_epoch_extracts_the_source_test_features_once(synthetic_root, tmp_path):
    """Scoring and the rank lists share the features: each test image goes through the network once."""
    cfg = make_config("retrain", {"scale": "smoke", "data_dir": str(synthetic_root), "val_fraction": 0.0})
    market = load_dataset("market1501", synthetic_root)
    splits = Splits(source=market, sources=[market], train=market.train, val_query=[], val_gallery=[],
                    target=None, num_classes=10)
    torch.manual_seed(0)
    model = spaces.build_msinet("msmt", 10)
    seen = []
    model.register_forward_hook(lambda _m, args, _out: seen.append(len(args[0])) if not _m.training else None)
    features: dict = {}
    metrics = score_tests(model, splits, cfg, torch.device("cpu"), 0, features)
    drawn = draw_network_views(model, splits, cfg, torch.device("cpu"), 0, tmp_path, features)
    assert sum(seen) == len(market.query) + len(market.gallery)  # was twice as many
    assert {p.name for p in drawn} == {"rank_lists.png", "activation_maps.png", "rank_lists.json"}
    assert metrics["source/num_valid_queries"] > 0
