"""Spatial alignment module (SAM) of MSINet and its loss, for cross-domain training.

On the last feature map (16x8 for persons, 16x16 for vehicles; any size works) two kinds of
position scores are computed:

* a parameter-free correlation between every pair of images in the batch: ``correlation[g, p, i]`` is
  the best match, over all positions of image g, of the feature at position i of image p;
* a position-attention module (query/key 1x1 convs to C/8) on each image alone: ``attention[b, i]`` is
  the largest query(i)·key(j) over positions j of image b.

The loss aligns them with cosine distances (modes ``pos``, ``neg``, ``pos_neg``):

* ``pos``: for every anchor g and every image p of the same identity (g itself included),
  1 − cos(attention[g], correlation[g, p]);
* ``neg``: for every anchor g and every two images p, q of other identities (p = q included),
  1 − cos(correlation[g, p], correlation[g, q]).

Each term is averaged per anchor and then over anchors, which equals the authors' mean over a PK batch
and also works for batches where identities have unequal counts. SAM is used in training only.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

SAM_MODES: tuple[str, ...] = ("none", "pos", "neg", "pos_neg")


class SAMScores(NamedTuple):
    """What the model hands to :func:`sam_loss`: shapes (B, B, H*W) and (B, H*W)."""

    correlation: Tensor
    attention: Tensor


class PositionAttention(nn.Module):
    """Position-attention energies of one image: query(i) · key(j) for all position pairs."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.query_conv = nn.Conv2d(channels, channels // 8, kernel_size=1)
        self.key_conv = nn.Conv2d(channels, channels // 8, kernel_size=1)

    def forward(self, x: Tensor) -> Tensor:
        query = self.query_conv(x).flatten(2).transpose(1, 2)  # (B, HW, C/8)
        key = self.key_conv(x).flatten(2)  # (B, C/8, HW)
        return torch.bmm(query, key)  # (B, HW, HW)


def pairwise_correlation(x: Tensor) -> Tensor:
    """``out[g, p, i] = max_j <x_p[:, i], x_g[:, j]>``: parameter-free matching of every image pair."""
    feats = x.flatten(2)  # (B, C, HW)
    scores = torch.einsum("gcj,pci->gpij", feats, feats)  # (B, B, HW_p, HW_g)
    return scores.max(dim=-1).values


class SpatialAlignModule(nn.Module):
    """Computes the SAM scores of a batch of last-stage feature maps."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.pos_pam = PositionAttention(channels)

    def forward(self, x: Tensor) -> SAMScores:
        return SAMScores(pairwise_correlation(x), self.pos_pam(x).max(dim=-1).values)


def _mean_cosine_distance(x: Tensor, y: Tensor, mask: Tensor) -> Tensor:
    """Mean over anchors of the mean of 1 − cos(x[g, k], y[g, l]) over the pairs (k, l) that mask keeps;
    anchors without a pair are left out (none: 0). Masked means: no host read, no data-dependent shape."""
    dist = 1 - torch.bmm(F.normalize(x, dim=-1), F.normalize(y, dim=-1).transpose(1, 2))
    mask = mask.to(dist.dtype)
    counts = mask.sum(dim=(1, 2))
    has_pairs = counts > 0
    per_anchor = (dist * mask).sum(dim=(1, 2)) / counts.clamp_min(1)
    return torch.where(has_pairs, per_anchor, 0).sum() / has_pairs.sum().clamp_min(1)


def sam_loss(scores: SAMScores, pids: Tensor, mode: str) -> Tensor:
    """The spatial alignment loss (unweighted; the trial multiplies it by its SAM ratio)."""
    if mode not in SAM_MODES or mode == "none":
        raise ValueError(f"sam_loss mode must be one of {SAM_MODES[1:]}, got {mode!r}")
    correlation, attention = scores
    same = pids.view(-1, 1) == pids.view(1, -1)  # (B, B) [anchor g, image p]
    loss = correlation.new_zeros(())
    if mode in ("pos", "pos_neg"):
        loss = loss + _mean_cosine_distance(attention.unsqueeze(1), correlation, same.unsqueeze(1))
    if mode in ("neg", "pos_neg"):
        other = ~same
        loss = loss + _mean_cosine_distance(correlation, correlation, other.unsqueeze(2) & other.unsqueeze(1))
    return loss
