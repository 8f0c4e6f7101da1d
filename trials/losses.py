"""ReID losses of the MSINet recipe (docs/method.md): label-smoothed CE + batch-hard triplet per head."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def label_smoothing_ce(logits: torch.Tensor, targets: torch.Tensor, epsilon: float = 0.1) -> torch.Tensor:
    """Cross-entropy against (1 - ε)·one_hot + ε/C, the regulariser of Szegedy et al. used by MSINet."""
    log_probs = F.log_softmax(logits.float(), dim=1)
    nll = -log_probs.gather(1, targets.unsqueeze(1)).squeeze(1)
    uniform = -log_probs.mean(dim=1)
    return ((1.0 - epsilon) * nll + epsilon * uniform).mean()


def batch_hard_triplet(features: torch.Tensor, targets: torch.Tensor, margin: float = 0.3) -> torch.Tensor:
    """Hermans et al.'s batch-hard triplet loss on L2-normalised features (euclidean distances).

    Each anchor takes its farthest positive and nearest negative in the batch, which is why the PK
    sampler puts K images of P identities into every batch. The mean runs over anchors that have a
    negative (none: 0), as a masked mean: no host read, no data-dependent shape.
    """
    x = F.normalize(features.float(), dim=1)
    dist = torch.cdist(x, x).clamp_min(1e-12)
    same = targets.unsqueeze(0) == targets.unsqueeze(1)
    hardest_pos = dist.masked_fill(~same, float("-inf")).amax(dim=1)
    hardest_neg = dist.masked_fill(same, float("inf")).amin(dim=1)
    valid = torch.isfinite(hardest_neg)  # an anchor whose id fills the whole batch has no negative
    per_anchor = F.relu(torch.where(valid, hardest_pos - hardest_neg + margin, 0))
    return per_anchor.sum() / valid.sum().clamp_min(1)


def reid_head_loss(
    logits: torch.Tensor, features: torch.Tensor, targets: torch.Tensor, epsilon: float, margin: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """The (CE, triplet) pair of one head; kept apart so trials can report each."""
    return label_smoothing_ce(logits, targets, epsilon), batch_hard_triplet(features, targets, margin)
