"""Rank lists and activation maps of a network on the synthetic Market-1501 test split: the rows are the
queries chosen, the cells the top-K gallery images, the frames' colours (read back from the saved PNG) the
identities; the activation maps are those of the network's own feature maps."""

import json
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest
import torch

import spaces
from trials.data import load_dataset
from trials.evaluation.activation_maps import activation_figure, activation_maps
from trials.evaluation.metrics import rank_metrics
from trials.evaluation.network_views import FILES, write_network_views
from trials.evaluation.rank_lists import (
    BORDER,
    CORRECT_COLOUR,
    DISTRACTOR_COLOUR,
    QUERY_COLOUR,
    WRONG_COLOUR,
    RankedQuery,
    cell_size,
    choose_queries,
    query_rankings,
    rank_list_figure,
    save_figure,
)

IMAGE_SIZE = (64, 32)
pytestmark = pytest.mark.slow  # features of the whole synthetic test split, and four figures


@pytest.fixture(scope="module")
def market(synthetic_root):
    return load_dataset("market1501", synthetic_root)


@pytest.fixture(scope="module")
def network():
    torch.manual_seed(0)
    return spaces.build_msinet("msmt", 10).eval()


@pytest.fixture(scope="module")
def views(market, network, tmp_path_factory):
    out = tmp_path_factory.mktemp("views")
    return write_network_views(network, market, IMAGE_SIZE, torch.device("cpu"), out, top_k=4, num_queries=3)


def test_per_query_ap_averages_to_the_protocol_map():
    rng = np.random.default_rng(0)
    q_pids, g_pids = rng.integers(1, 6, 30), np.concatenate([rng.integers(0, 6, 60), [7]])
    q_cams, g_cams = rng.integers(0, 3, 30), rng.integers(0, 3, 61)
    distmat = rng.random((30, 61))
    aps, top = query_rankings(distmat, q_pids, g_pids, q_cams, g_cams, top_k=5)
    expected = rank_metrics(distmat, q_pids, g_pids, q_cams, g_cams)
    assert np.nanmean(aps) == pytest.approx(expected["mAP"])
    assert (~np.isnan(aps)).sum() == expected["num_valid_queries"]
    for query in range(30):  # the top 5 skip the query's own camera images of its id, nearest first
        order = [g for g in np.argsort(distmat[query], kind="stable")
                 if not (g_pids[g] == q_pids[query] and g_cams[g] == q_cams[query])]
        assert list(top[query]) == order[:5]


def test_queries_are_seeded_independently_of_the_network_and_include_the_worst():
    aps = np.array([0.5, np.nan, 0.9, 0.2, 0.7, 0.4, np.nan, 0.8, 0.6, 0.3])
    rows = choose_queries(aps, 4, seed=0)
    assert len(rows) == 4 and len({i for i, _ in rows}) == 4
    assert (3, "worst AP") in rows and all(not np.isnan(aps[i]) for i, _ in rows)
    assert [reason for _, reason in rows].count("worst AP") == 1
    assert choose_queries(aps, 4, seed=0) == rows
    other = np.where(np.isnan(aps), np.nan, 1 - aps)  # another network: same valid queries, other APs
    other_rows = choose_queries(other, 4, seed=0)
    assert [i for i, _ in other_rows[:3]] == [i for i, _ in rows[:3]]
    assert (2, "worst AP") in other_rows
    assert choose_queries(np.full(3, np.nan), 2) == []


def _cells(figure, path):
    """(row, column, RGB of the frame's left strip, RGB of the cell's centre) of every drawn image cell."""
    picture = (matplotlib.image.imread(path)[..., :3] * 255).round().astype(int)
    height = picture.shape[0]
    renderer = figure.canvas.get_renderer()
    boxes = [axes.images[0].get_window_extent(renderer) for axes in figure.axes if axes.get_visible() and axes.images]
    columns = sorted({round(box.x0) for box in boxes})
    rows = sorted({round(box.y0) for box in boxes}, reverse=True)
    cells = []
    for box in boxes:
        scale = box.width / cell_size(IMAGE_SIZE)[1]
        x, y = int(box.x0 + BORDER * scale / 2), int(height - (box.y0 + box.y1) / 2)
        cells.append((rows.index(round(box.y0)), columns.index(round(box.x0)), tuple(picture[y, x])))
    return rows, columns, cells


def test_the_rank_grid_has_n_rows_of_query_and_k_cells_framed_by_identity(market, views, tmp_path):
    record = json.loads(views["rank_lists.json"].read_text())
    assert [q["reason"] for q in record["queries"]][-1] == "worst AP" and len(record["queries"]) == 3
    rows = [RankedQuery(q["index"], q["ap"], q["reason"], tuple(g["index"] for g in q["gallery"]),
                        tuple(g["distance"] for g in q["gallery"])) for q in record["queries"]]
    distractor = next(i for i, s in enumerate(market.gallery) if s.pid == 0)
    query = market.query[rows[0].index]
    match = next(i for i, s in enumerate(market.gallery) if s.pid == query.pid and s.camid != query.camid)
    rows.append(RankedQuery(rows[0].index, rows[0].ap, "seeded", (distractor, match, *rows[0].gallery[:2]),
                            (0.0, 0.1, *rows[0].distances[:2])))  # hand-made: a distractor, then a true match
    figure = rank_list_figure(market.query, market.gallery, rows, IMAGE_SIZE, top_k=4)
    path = save_figure(figure, tmp_path / "grid.png")
    row_positions, column_positions, cells = _cells(figure, path)
    assert len(row_positions) == 4 and len(column_positions) == 5 and len(cells) == 4 * 5
    seen = set()
    for row, column, colour in cells:
        query = market.query[rows[row].index]
        if column == 0:
            expected = QUERY_COLOUR
        else:
            pid = market.gallery[rows[row].gallery[column - 1]].pid
            expected = CORRECT_COLOUR if pid == query.pid else DISTRACTOR_COLOUR if pid == 0 else WRONG_COLOUR
        assert np.abs(np.subtract(colour, expected)).max() <= 2, (row, column, colour, expected)
        seen.add(expected)
    assert {CORRECT_COLOUR, WRONG_COLOUR, DISTRACTOR_COLOUR} <= seen
    texts = [axes.get_title() for axes in figure.axes if axes.get_visible()]
    assert f"AP {rows[-2].ap:.3f} (worst)" in texts[10] and "distractor" in texts[16]
    # cameras as the file names write them (c1 ... c6), not 0-based
    assert f"id {query.pid} c{query.camid + 1}\n" in texts[15] and f" c{market.gallery[match].camid + 1}" in texts[17]
    assert f"_c{query.camid + 1}s" in Path(query.path).name


def test_the_saved_pictures_are_the_grids(views):
    rank = matplotlib.image.imread(views["rank_lists.png"])
    maps = matplotlib.image.imread(views["activation_maps.png"])
    assert rank.shape[0] > 3 * cell_size(IMAGE_SIZE)[0] and rank.shape[1] > 5 * cell_size(IMAGE_SIZE)[1]
    assert maps.shape[0] == rank.shape[0] and maps.shape[1] < rank.shape[1]
    assert set(views) == set(FILES)


def test_activation_maps_are_the_mean_absolute_feature_maps(market, network, views, tmp_path):
    record = json.loads(views["rank_lists.json"].read_text())
    samples = [market.query[q["index"]] for q in record["queries"]]
    last, part = activation_maps(network, samples, IMAGE_SIZE, torch.device("cpu"))
    from trials.data import ImageDataset, build_transforms

    batch = torch.stack([ImageDataset(samples, build_transforms(*IMAGE_SIZE, train=False))[i][0]
                         for i in range(len(samples))])
    with torch.no_grad():
        feature, part_input = network.feature_maps(batch)
        expected_part = network.f_conv(part_input).abs().mean(dim=1)
    np.testing.assert_allclose(last, feature.abs().mean(dim=1).numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(part, expected_part.numpy(), rtol=1e-5, atol=1e-6)
    rows = [RankedQuery(q["index"], q["ap"], q["reason"], (), ()) for q in record["queries"]]
    figure = activation_figure(market.query, rows, last, part, IMAGE_SIZE)
    path = save_figure(figure, tmp_path / "maps.png")
    row_positions, column_positions, cells = _cells(figure, path)
    assert (len(row_positions), len(column_positions), len(cells)) == (3, 3, 9)
    assert all(np.abs(np.subtract(colour, QUERY_COLOUR)).max() <= 2 for _, _, colour in cells)
