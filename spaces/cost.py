"""Size and inference cost of a network: the numbers the paper reports (2.3 M parameters, ~1.15 GMAC)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

# Parameters that the deployed network does not hold: identity classifiers and the training-only SAM.
_TRAINING_ONLY = ("classifier", "f_classifier", "align_module")


def count_parameters(model: nn.Module, exclude: Sequence[str] = ()) -> int:
    """Number of parameter elements, skipping parameters under the named top-level modules."""
    return sum(p.numel() for name, p in model.named_parameters() if name.split(".")[0] not in exclude)


@torch.no_grad()
def count_macs(model: nn.Module, input_size: Sequence[int] = (3, 256, 128)) -> int:
    """Multiply-accumulates of one eval-mode forward pass of a single image (convs, linears, matmuls)."""
    was_training = model.training
    model.eval()
    try:
        device = next(model.parameters()).device
        x = torch.zeros(1, *input_size, device=device)
        with FlopCounterMode(display=False) as counter:
            model(x)
    finally:
        model.train(was_training)
    return counter.get_total_flops() // 2


def model_cost(model: nn.Module, input_size: Sequence[int] = (3, 256, 128)) -> dict[str, int]:
    """``params`` (all), ``params_no_classifier`` (without the classifiers and SAM: the paper's count)
    and ``macs`` (one image at inference)."""
    return {
        "params": count_parameters(model),
        "params_no_classifier": count_parameters(model, exclude=_TRAINING_ONLY),
        "macs": count_macs(model, input_size),
    }
