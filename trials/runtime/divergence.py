"""Stop a diverged trial with a clear message instead of training on NaN and reporting garbage."""

from __future__ import annotations

import math

import torch


class NonFiniteLossError(RuntimeError):
    """A loss term became NaN or infinite; the message says which term, at which epoch and iteration."""


def check_finite(terms: dict[str, torch.Tensor], epoch: int, iteration: int) -> None:
    """One device sync per call: all terms are checked together, the bad one is named."""
    tensors = [torch.as_tensor(v).detach().float() for v in terms.values()]
    values = torch.stack([t.to(tensors[0].device) for t in tensors])  # terms may live on different devices
    if bool(torch.isfinite(values).all()):
        return
    for name, v in zip(terms, values.tolist(), strict=True):
        if not math.isfinite(v):
            raise NonFiniteLossError(
                f"loss '{name}' is {v} at epoch {epoch}, iteration {iteration}; the trial stops here "
                "(try a lower lr, a longer warm-up, or amp=false)"
            )
