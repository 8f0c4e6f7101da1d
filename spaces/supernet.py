"""The MSI supernet: every slot holds all four interaction operations, mixed by softmax(alpha).

DARTS-style continuous relaxation. ``alpha`` (12 slots x 4 operations, columns in the order of
``spaces.genotype.OPERATIONS``) is the only architecture parameter; :meth:`Supernet.genotype` takes the
argmax per slot. As in the authors' search code, search cells use ``mid = in_channels // 4`` (so the first
cell of the network, fed by the 64-channel stem, has 16-channel branches) and the network has no part
branch: both in train and in eval mode the forward returns the 512-d GAP feature of the last stage, the
feature the TCM memories (and evaluation during search) use.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from spaces.genotype import NUM_SLOTS, OPERATIONS, Genotype
from spaces.msinet import CHANNELS, Cell, ConvBNReLU, cell_layout, init_weights, stage_downsample
from spaces.operations import Pair, build_operation


class MixedInteraction(nn.Module):
    """All candidate operations of one slot; the output pair is their weighted sum."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.candidates = nn.ModuleList(build_operation(name, channels) for name in OPERATIONS)

    def forward(self, pair: Pair, weights: Tensor) -> Pair:
        outputs = [op(pair) for op in self.candidates]
        a = sum(w * out[0] for w, out in zip(weights, outputs, strict=True))
        b = sum(w * out[1] for w, out in zip(weights, outputs, strict=True))
        return a, b


class Supernet(nn.Module):
    """Search network: stem, three stages of two search cells, GAP. ``alpha`` holds the architecture."""

    def __init__(self, channels: Sequence[int] = CHANNELS) -> None:
        super().__init__()
        self.conv1 = ConvBNReLU(3, channels[0], 7, stride=2, padding=3)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.cells = nn.ModuleList()
        for entry in cell_layout(channels):
            if isinstance(entry, int):
                self.cells.append(stage_downsample(entry))
            else:
                c_in, c_out = entry
                mid = c_in // 4
                self.cells.append(Cell(c_in, c_out, mid, MixedInteraction(mid), MixedInteraction(mid)))
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.feature_dim = channels[-1]
        init_weights(self)
        self.alpha = nn.Parameter(1e-3 * torch.randn(NUM_SLOTS, len(OPERATIONS)))

    def forward(self, x: Tensor) -> Tensor:
        weights = torch.softmax(self.alpha, dim=-1)
        x = self.maxpool(self.conv1(x))
        k = 0
        for cell in self.cells:
            if isinstance(cell, Cell):
                x = cell(x, weights[2 * k: 2 * k + 2])
                k += 1
            else:
                x = cell(x)
        return self.gap(x).flatten(1)

    def arch_parameters(self) -> list[nn.Parameter]:
        """What the architect optimises."""
        return [self.alpha]

    def weight_parameters(self) -> list[nn.Parameter]:
        """What the weight optimiser updates: every parameter except alpha."""
        return [p for name, p in self.named_parameters() if name != "alpha"]

    def arch_weights(self) -> Tensor:
        """softmax(alpha), detached: the per-slot operation probabilities to log."""
        return torch.softmax(self.alpha.detach(), dim=-1)

    def genotype(self) -> Genotype:
        """The derived architecture: the strongest operation per slot."""
        return Genotype(OPERATIONS[i] for i in self.alpha.argmax(dim=-1).tolist())
