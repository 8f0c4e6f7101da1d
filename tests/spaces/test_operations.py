"""The four interaction operations: what each does to the pair of branches."""

import pytest
import torch

from spaces.msinet import Cell
from spaces.operations import ChannelGate, CrossAttention, Exchange, Identity, build_operation


@pytest.fixture
def pair():
    torch.manual_seed(0)
    return torch.randn(2, 8, 4, 3), torch.randn(2, 8, 4, 3)


def test_identity_returns_both_branches_unchanged(pair):
    a, b = Identity()(pair)
    assert a is pair[0] and b is pair[1]


def test_exchange_swaps_the_branches(pair):
    a, b = Exchange()(pair)
    assert a is pair[1] and b is pair[0]


def test_channel_gate_scales_each_channel_by_a_value_in_0_1(pair):
    gate = ChannelGate(32)
    x = torch.rand(2, 32, 4, 3) + 0.1
    out, _ = gate((x, x))
    ratio = out / x
    assert torch.all(ratio > 0) and torch.all(ratio < 1)
    # one weight per (image, channel): constant over positions
    assert torch.allclose(ratio, ratio[:, :, :1, :1].expand_as(ratio), atol=1e-6)


def test_channel_gate_is_one_se_block_shared_by_both_branches():
    gate = ChannelGate(32)
    names = [name for name, _ in gate.named_parameters()]
    assert names == ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]
    assert gate.fc1.out_channels == 32 // 16
    x = torch.rand(2, 32, 4, 3)
    a, b = gate((x, x.clone()))
    assert torch.equal(a, b)
    y = torch.rand(2, 32, 4, 3)
    expected = y * torch.sigmoid(gate.fc2(torch.relu(gate.fc1(y.mean(dim=(2, 3), keepdim=True)))))
    assert torch.allclose(gate((x, y))[1], expected)


def test_cross_attention_with_gamma_zero_is_the_identity(pair):
    op = CrossAttention(8)
    assert op.gamma.item() == 0.0
    a, b = op(pair)
    assert torch.equal(a, pair[0]) and torch.equal(b, pair[1])


def _hand_cross_attention(query, key, gamma):
    """Loop-level reading of the formula for one branch."""
    out = torch.empty_like(query)
    for n in range(query.shape[0]):
        q = query[n].reshape(query.shape[1], -1)
        k = key[n].reshape(key.shape[1], -1)
        energy = q @ k.T  # (C, C)
        attention = torch.softmax(energy.max(dim=1, keepdim=True).values - energy, dim=1)
        out[n] = (gamma * (attention @ q) + q).reshape(query.shape[1:])
    return out


def test_cross_attention_keys_each_branch_with_the_other(pair):
    op = CrossAttention(8)
    with torch.no_grad():
        op.gamma.fill_(0.7)
    a, b = op(pair)
    assert not torch.allclose(a, pair[0])
    assert torch.allclose(a, _hand_cross_attention(pair[0], pair[1], 0.7), atol=1e-5)
    assert torch.allclose(b, _hand_cross_attention(pair[1], pair[0], 0.7), atol=1e-5)
    # a's output depends on b only through the attention weights
    a2, _ = op((pair[0], torch.randn_like(pair[1])))
    assert not torch.allclose(a, a2)


def test_cross_attention_has_one_learnable_scalar():
    assert [(n, tuple(p.shape)) for n, p in CrossAttention(8).named_parameters()] == [("gamma", (1,))]


@pytest.mark.parametrize(
    ("name", "cls"),
    [("none", Identity), ("identity", Identity), ("exc", Exchange), ("exchange", Exchange),
     ("ag", ChannelGate), ("channel_gate", ChannelGate), ("cross_att", CrossAttention),
     ("cross_attention", CrossAttention)],
)
def test_build_operation_accepts_short_and_descriptive_names(name, cls):
    assert isinstance(build_operation(name, 32), cls)


def test_build_operation_rejects_unknown_names():
    with pytest.raises(ValueError, match="allowed: none, exc, ag, cross_att"):
        build_operation("conv3x3", 32)


@pytest.mark.parametrize("ops", [("ag", "cross_att"), ("exc", "none")])
def test_a_cell_maps_in_channels_to_out_channels_at_the_same_resolution(ops):
    cell = Cell(64, 256, 64, build_operation(ops[0], 64), build_operation(ops[1], 64))
    out = cell(torch.randn(2, 64, 8, 4))
    assert out.shape == (2, 256, 8, 4)
    assert torch.all(out >= 0)  # ends in ReLU
    assert cell.downsample is not None
    assert Cell(256, 256, 64, Identity(), Identity()).downsample is None
