"""The four multi-scale interaction operations of MSINet (Gu et al., CVPR 2023).

Each operation mixes the two branches of a cell: it takes the pair (a, b) of feature maps of equal shape
(B, C, H, W) and returns a new pair. Parameter names (``fc1``/``fc2`` for the gate, ``gamma`` for cross
attention) follow the authors' checkpoint layout so released weights load key by key.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from spaces.genotype import OPERATIONS, canonical_operation

Pair = tuple[Tensor, Tensor]


class Identity(nn.Module):
    """``none``: the branches pass unchanged."""

    def forward(self, pair: Pair) -> Pair:
        a, b = pair
        return a, b


class Exchange(nn.Module):
    """``exc``: the two branches swap, so each continues with the other's receptive field."""

    def forward(self, pair: Pair) -> Pair:
        a, b = pair
        return b, a


class ChannelGate(nn.Module):
    """``ag``: one squeeze-excitation gate, shared by both branches and applied to each."""

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        hidden = channels // reduction
        self.fc1 = nn.Conv2d(channels, hidden, kernel_size=1, bias=True)
        self.fc2 = nn.Conv2d(hidden, channels, kernel_size=1, bias=True)

    def gate(self, x: Tensor) -> Tensor:
        """Per-channel weights in (0, 1) computed from the globally pooled map."""
        return torch.sigmoid(self.fc2(F.relu(self.fc1(F.adaptive_avg_pool2d(x, 1)))))

    def forward(self, pair: Pair) -> Pair:
        a, b = pair
        return a * self.gate(a), b * self.gate(b)


class CrossAttention(nn.Module):
    """``cross_att``: channel attention of each branch, keyed by the other branch.

    For branch a: energy = a · bᵀ over spatial positions (B, C, C); attention = softmax(rowmax − energy);
    output = γ · (attention @ a) + a. Symmetrically for b with a as key. One scalar γ (initialised to 0,
    so the operation starts as the identity) is shared by both branches.
    """

    def __init__(self, channels: int | None = None) -> None:
        super().__init__()
        self.channels = channels
        self.gamma = nn.Parameter(torch.zeros(1))

    def attend(self, query: Tensor, key: Tensor) -> Tensor:
        """Channel attention of ``query`` (also the values) with channel-affinities taken from ``key``."""
        B, C, H, W = query.shape
        q = query.reshape(B, C, H * W)
        energy = torch.bmm(q, key.reshape(B, C, H * W).transpose(1, 2))
        energy = energy.amax(dim=-1, keepdim=True) - energy
        attended = torch.bmm(torch.softmax(energy, dim=-1), q).reshape(B, C, H, W)
        return self.gamma * attended + query

    def forward(self, pair: Pair) -> Pair:
        a, b = pair
        return self.attend(a, b), self.attend(b, a)


def build_operation(name: str, channels: int) -> nn.Module:
    """The interaction module for an operation name (short or descriptive) at a branch width."""
    name = canonical_operation(name)
    if name == "none":
        return Identity()
    if name == "exc":
        return Exchange()
    if name == "ag":
        return ChannelGate(channels)
    if name == "cross_att":
        return CrossAttention(channels)
    raise AssertionError(f"operation {name!r} is in OPERATIONS {OPERATIONS} but has no module")
