"""Ranked lists: for chosen queries, the top-K gallery images a network returns, drawn as one grid.

Researchers judge a ReID network by its mistakes, so each row is a query and its K nearest gallery images
under the test protocol (same id *and* same camera removed), bordered green (same identity), red (another
identity) or orange (a distractor, id 0), with the query's AP in its title. The queries are drawn with a
fixed seed from those that have a match, independently of the network, so two networks show the same
queries; the last row is the network's own worst query by AP. Drawn on an Agg canvas (no pyplot).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from trials.data import Sample
from trials.data.images import read_image
from trials.evaluation.metrics import host_array

if TYPE_CHECKING:  # matplotlib is imported where a figure is drawn: a bare GPU machine has none
    from matplotlib.figure import Figure

SEED = 0  # the query draw: the same for every network and trial
NUM_QUERIES = 6
TOP_K = 8
CELL_HEIGHT = 128  # pixels of one image cell, border included
BORDER = 6
DPI = 100
QUERY_COLOUR = (40, 90, 200)
CORRECT_COLOUR = (0, 170, 0)
WRONG_COLOUR = (220, 0, 0)
DISTRACTOR_COLOUR = (255, 140, 0)
DISTRACTOR_PID = 0


@dataclass(frozen=True)
class RankedQuery:
    """One row of the grid: the query's index, its AP, why it was chosen, and its top gallery indices."""

    index: int
    ap: float
    reason: str  # "seeded" or "worst AP"
    gallery: tuple[int, ...]
    distances: tuple[float, ...]


def query_rankings(distmat, q_pids, g_pids, q_camids, g_camids, top_k: int = TOP_K,
                   remove_same_camera: bool = True, chunk: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Per query, its AP under the test protocol (nan without a match) and its top-k gallery indices in the
    filtered ranking (-1 where fewer remain). Stable order: ties go to the lower gallery index."""
    dist = host_array(distmat)  # no float64 copy: an MSMT17 distmat is 3.8 GB in float32
    q_pids, g_pids = np.asarray(q_pids).reshape(-1), np.asarray(g_pids).reshape(-1)
    q_camids, g_camids = np.asarray(q_camids).reshape(-1), np.asarray(g_camids).reshape(-1)
    aps = np.full(len(dist), np.nan)
    top = np.full((len(dist), top_k), -1, dtype=np.int64)
    for start in range(0, len(dist), chunk):
        order = np.argsort(dist[start:start + chunk], axis=1, kind="stable")
        for offset, ranking in enumerate(order):
            query = start + offset
            dropped = (g_pids[ranking] == q_pids[query]) & (g_camids[ranking] == q_camids[query])
            kept = ranking[~dropped] if remove_same_camera else ranking
            top[query, :min(top_k, len(kept))] = kept[:top_k]
            matches = g_pids[kept] == q_pids[query]
            if matches.any():
                hits = np.cumsum(matches)[matches]
                aps[query] = float(np.mean(hits / (np.flatnonzero(matches) + 1)))
    return aps, top


def choose_queries(aps: np.ndarray, num: int = NUM_QUERIES, seed: int = SEED) -> list[tuple[int, str]]:
    """(query index, reason) for `num` rows: a seeded draw among the queries that have a match (which does
    not depend on the network), then the worst query by AP (lowest index on ties). When the worst is among
    the first num-1 drawn, the draw simply continues, so those rows stay the same for every network."""
    valid = np.flatnonzero(~np.isnan(aps))
    if valid.size == 0 or num < 1:
        return []
    drawn = [int(i) for i in np.random.default_rng(seed).permutation(valid)]
    worst = int(valid[np.argmin(aps[valid])])
    rows = drawn[:num - 1]
    if worst in rows:
        rows = drawn[:num]
    else:
        rows.append(worst)
    return [(index, "worst AP" if index == worst else "seeded") for index in rows]


def ranked_queries(distmat, aps: np.ndarray, top: np.ndarray, chosen: Sequence[tuple[int, str]]) -> list[RankedQuery]:
    """The chosen rows with their top gallery indices and distances."""
    dist = host_array(distmat)
    rows = []
    for index, reason in chosen:
        gallery = tuple(int(g) for g in top[index] if g >= 0)
        rows.append(RankedQuery(index, float(aps[index]), reason, gallery,
                                tuple(float(dist[index, g]) for g in gallery)))
    return rows


def cell_array(path: str, size: tuple[int, int], colour: tuple[int, int, int] | None) -> np.ndarray:
    """The image at `path` resized to `size` (height, width) inside a `BORDER`-pixel frame of `colour`
    (white when None), as an RGB uint8 array."""
    height, width = size
    inner = read_image(path).resize((width - 2 * BORDER, height - 2 * BORDER), Image.BILINEAR)
    cell = np.empty((height, width, 3), dtype=np.uint8)
    cell[:] = colour if colour is not None else (255, 255, 255)
    cell[BORDER:height - BORDER, BORDER:width - BORDER] = np.asarray(inner)
    return cell


def cell_size(image_size: tuple[int, int]) -> tuple[int, int]:
    """(height, width) of a cell for a network input of `image_size` (height, width): CELL_HEIGHT high."""
    height, width = image_size
    return CELL_HEIGHT, max(2 * BORDER + 8, round(CELL_HEIGHT * width / height))


def identity_colour(query_pid: int, gallery_pid: int) -> tuple[int, int, int]:
    """Green for the query's identity, orange for a distractor, red for any other identity."""
    if gallery_pid == query_pid:
        return CORRECT_COLOUR
    return DISTRACTOR_COLOUR if gallery_pid == DISTRACTOR_PID else WRONG_COLOUR


def rank_list_figure(query: Sequence[Sample], gallery: Sequence[Sample], rows: Sequence[RankedQuery],
                     image_size: tuple[int, int], top_k: int = TOP_K, title: str = "") -> Figure:
    """One row per ranked query: the query (blue frame) and its top-k gallery images, one axes per cell."""
    size = cell_size(image_size)
    figure = grid_figure(len(rows), top_k + 1, size)
    axes = figure.subplots(len(rows), top_k + 1, squeeze=False)
    for row, ranked in zip(axes, rows, strict=True):
        q = query[ranked.index]
        show_cell(row[0], cell_array(q.path, size, QUERY_COLOUR))
        row[0].set_title(f"query {ranked.index}\nid {q.pid} {camera_label(q.camid)}\nAP {ranked.ap:.3f}"
                         + (" (worst)" if ranked.reason == "worst AP" else ""), fontsize=7)
        for rank, panel in enumerate(row[1:], start=1):
            if rank > len(ranked.gallery):
                panel.set_visible(False)
                continue
            g = gallery[ranked.gallery[rank - 1]]
            show_cell(panel, cell_array(g.path, size, identity_colour(q.pid, g.pid)))
            name = "distractor" if g.pid == DISTRACTOR_PID else f"id {g.pid}"
            panel.set_title(f"#{rank} d={ranked.distances[rank - 1]:.3g}\n{name} {camera_label(g.camid)}", fontsize=7)
    figure.suptitle(title or f"Top-{top_k} gallery images per query (blue: the query)\ngreen: same identity, "
                    "red: another identity, orange: distractor (id 0)", fontsize=8)
    return figure


def camera_label(camid: int) -> str:
    """A camera as the datasets' file names write it (`c1` ... `c6` in Market-1501): samples hold it 0-based."""
    return f"c{int(camid) + 1}"


def grid_figure(rows: int, columns: int, cell: tuple[int, int]) -> Figure:
    """A figure sized for rows x columns cells of `cell` pixels, with room for three-line cell titles and a
    two-line figure title (at least 360 pixels wide, so that the title fits a narrow grid)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    height, width = cell
    pixels = (max(columns * (width + 24) + 40, 360), rows * (height + 52) + 100)
    figure = Figure(figsize=(pixels[0] / DPI, pixels[1] / DPI), dpi=DPI)
    FigureCanvasAgg(figure)
    figure.subplots_adjust(left=20 / pixels[0], right=1 - 20 / pixels[0], top=1 - 100 / pixels[1],
                           bottom=8 / pixels[1], wspace=0.15, hspace=0.5)
    return figure


def show_cell(axes, image: np.ndarray) -> None:
    """An image cell without ticks or frame, pixels drawn as they are."""
    axes.imshow(image, interpolation="nearest")
    axes.set_xticks([])
    axes.set_yticks([])
    for spine in axes.spines.values():
        spine.set_visible(False)


def save_figure(figure: Figure, path: Path) -> Path:
    """Save at the figure's own DPI and size, so that cell positions in the PNG are those of the axes."""
    path = Path(path)
    figure.savefig(path, format="png", dpi=DPI)
    return path
