"""Learning-rate schedules of the MSINet recipe: linear warm-up, then x gamma at each milestone epoch."""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence

import torch
from torch.optim.lr_scheduler import LambdaLR


def warmup_multistep(
    optimizer: torch.optim.Optimizer,
    warmup_epochs: int,
    warmup_factor: float,
    milestones: Sequence[int],
    gamma: float,
) -> LambdaLR:
    """Per-epoch factor: from `warmup_factor` up to 1 over `warmup_epochs`, times gamma**(milestones passed)."""
    steps = sorted(milestones)

    def factor(epoch: int) -> float:
        warm = 1.0
        if epoch < warmup_epochs:
            warm = warmup_factor + (1.0 - warmup_factor) * epoch / warmup_epochs
        return warm * gamma ** bisect_right(steps, epoch)

    return LambdaLR(optimizer, factor)
