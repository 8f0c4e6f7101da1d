"""Stop a diverged trial with a clear message instead of training on NaN and reporting garbage."""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch

from trials.runtime.failures import NonFiniteLossError  # a failure that repeats: never retried


def check_finite(terms: dict[str, torch.Tensor], epoch: int, iteration: int, lr: float | None = None,
                 weights: Iterable[torch.Tensor] = ()) -> None:
    """The loss terms and, cheaply, the weights after the step (one fused norm over every tensor: a NaN or
    infinite entry anywhere makes it non-finite): one device sync per call, the bad term named."""
    tensors = [torch.as_tensor(v).detach().float() for v in terms.values()]
    names = list(terms)
    weights = [w.detach() for w in weights if w.is_floating_point()]
    if weights:
        tensors.append(torch.nn.utils.get_total_norm(weights).float())
        names.append("weights")
    values = torch.stack([t.to(tensors[0].device) for t in tensors])  # terms may live on different devices
    if bool(torch.isfinite(values).all()):
        return
    at = f"at epoch {epoch}, iteration {iteration}" + (f" (lr {lr:g})" if lr is not None else "")
    losses = ", ".join(f"{n} {v:.4g}" for n, v in zip(names, values.tolist(), strict=True) if n != "weights")
    for name, v in zip(names, values.tolist(), strict=True):
        if not math.isfinite(v):
            what = (f"the weights became {v} after the step {at}; the losses were {losses}" if name == "weights"
                    else f"loss '{name}' is {v} {at}")
            raise NonFiniteLossError(f"{what}; the trial stops here (the training diverged: try a lower lr, a "
                                     "longer warm-up, or amp=false)")
