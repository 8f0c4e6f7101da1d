"""Where a network looks: the mean absolute activation of the last stage and of the part branch over each
input image, for the same queries as the ranked lists.

The maps come from `MSINet.feature_maps` (the last-stage map, and the map that feeds the part head) and the
part head's 1x1 convolution applied to the latter, averaged over channels, scaled to [0, 1] per image and
laid over the image. Drawn on an Agg canvas (no pyplot).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch
from PIL import Image

from trials.data import Sample
from trials.data.images import ImageDataset
from trials.data.transforms import build_transforms
from trials.evaluation.rank_lists import (
    BORDER,
    QUERY_COLOUR,
    RankedQuery,
    cell_array,
    cell_size,
    grid_figure,
    show_cell,
)

if TYPE_CHECKING:  # matplotlib is imported where a figure is drawn: a bare GPU machine has none
    from matplotlib.figure import Figure

OVERLAY = 0.5  # weight of the heat map over the image


def activation_maps(model: torch.nn.Module, samples: Sequence[Sample], image_size: tuple[int, int],
                    device) -> tuple[np.ndarray, np.ndarray]:
    """(last stage, part branch): mean |activation| over channels per image, arrays (n, h, w) on the host.

    The images go through the test transform; the model's train/eval mode is restored afterwards."""
    images, *_ = zip(*ImageDataset(samples, build_transforms(*image_size, train=False)), strict=True)
    batch = torch.stack(images).to(device)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            last, part_input = model.feature_maps(batch)
            part = model.f_conv(part_input)
    finally:
        model.train(was_training)
    return (last.float().abs().mean(dim=1).cpu().numpy(), part.float().abs().mean(dim=1).cpu().numpy())


def overlay(cell: np.ndarray, activation: np.ndarray) -> np.ndarray:
    """The activation map (h, w), scaled to [0, 1], upsampled and laid over the picture inside the cell's
    frame (jet colours; the frame is kept)."""
    from matplotlib import colormaps

    picture = cell[BORDER:-BORDER, BORDER:-BORDER].astype(float)
    height, width = picture.shape[:2]
    low, high = float(activation.min()), float(activation.max())
    scaled = (activation - low) / (high - low) if high > low else np.zeros_like(activation)
    heat = np.asarray(Image.fromarray(scaled.astype(np.float32), mode="F").resize((width, height), Image.BILINEAR))
    coloured = colormaps["jet"](np.clip(heat, 0, 1))[..., :3] * 255
    out = cell.copy()
    out[BORDER:-BORDER, BORDER:-BORDER] = ((1 - OVERLAY) * picture + OVERLAY * coloured).astype(np.uint8)
    return out


def activation_figure(query: Sequence[Sample], rows: Sequence[RankedQuery], last: np.ndarray, part: np.ndarray,
                      image_size: tuple[int, int]) -> Figure:
    """One row per query: the image, the last-stage map over it, the part-branch map over it."""
    size = cell_size(image_size)
    figure = grid_figure(len(rows), 3, size)
    axes = figure.subplots(len(rows), 3, squeeze=False)
    for row, ranked, last_map, part_map in zip(axes, rows, last, part, strict=True):
        sample = query[ranked.index]
        cell = cell_array(sample.path, size, QUERY_COLOUR)
        show_cell(row[0], cell)
        row[0].set_title(f"query {ranked.index}\nid {sample.pid} AP {ranked.ap:.3f}"
                         + (" (worst)" if ranked.reason == "worst AP" else ""), fontsize=7)
        for panel, activation, name in ((row[1], last_map, "last stage"), (row[2], part_map, "part branch")):
            show_cell(panel, overlay(cell, activation))
            panel.set_title(f"{name}\n{activation.shape[0]}x{activation.shape[1]} map", fontsize=7)
    figure.suptitle("Mean |activation| over the input\n(per image, scaled to [0, 1]; red = high)", fontsize=8)
    return figure
