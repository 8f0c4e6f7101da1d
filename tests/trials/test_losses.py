"""The ReID losses against hand computations."""

import math

import torch
import torch.nn.functional as F

from trials.losses import batch_hard_triplet, label_smoothing_ce


def test_label_smoothing_matches_hand_formula():
    logits = torch.tensor([[2.0, 0.0, -1.0]])
    target = torch.tensor([0])
    log_p = F.log_softmax(logits, dim=1)[0]
    expected = -(0.9 + 0.1 / 3) * log_p[0] - (0.1 / 3) * (log_p[1] + log_p[2])
    assert math.isclose(float(label_smoothing_ce(logits, target, 0.1)), float(expected), rel_tol=1e-6)


def test_label_smoothing_zero_is_plain_cross_entropy():
    logits, target = torch.randn(6, 5), torch.randint(0, 5, (6,))
    assert torch.allclose(label_smoothing_ce(logits, target, 0.0), F.cross_entropy(logits, target))


def test_batch_hard_triplet_picks_hardest_pairs():
    # Two ids on a line (features get L2-normalised, so use 2-d unit-ish vectors at chosen angles).
    angles = torch.tensor([0.0, 0.2, 1.0, 1.3])
    x = torch.stack([torch.cos(angles), torch.sin(angles)], dim=1)
    y = torch.tensor([0, 0, 1, 1])
    d = torch.cdist(x, x)
    expected = torch.stack([
        F.relu(d[0, 1] - d[0, 2] + 0.3), F.relu(d[1, 0] - d[1, 2] + 0.3),
        F.relu(d[2, 3] - d[2, 1] + 0.3), F.relu(d[3, 2] - d[3, 1] + 0.3),
    ]).mean()
    assert torch.allclose(batch_hard_triplet(x, y, 0.3), expected, atol=1e-6)


def test_triplet_is_zero_when_ids_are_far_apart_and_has_gradients_otherwise():
    x = torch.tensor([[1.0, 0.0], [1.0, 0.01], [-1.0, 0.0], [-1.0, 0.01]])
    assert float(batch_hard_triplet(x, torch.tensor([0, 0, 1, 1]), 0.3)) == 0.0
    x = torch.randn(8, 16, requires_grad=True)
    loss = batch_hard_triplet(x, torch.arange(4).repeat(2), 0.3)
    loss.backward()
    assert loss > 0 and x.grad.abs().sum() > 0
