"""SAM: pairwise correlations, position attention, and the alignment loss in each mode."""

import pytest
import torch

from spaces.msinet import build_msinet
from spaces.sam import SAMScores, SpatialAlignModule, pairwise_correlation, sam_loss

PIDS = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])


def _authors_formulation(scores, labels, mode):
    """The loss as the authors wrote it for PK batches: masked selection reshaped to (N, K, M)."""
    correlation, attention = scores
    N, M = correlation.shape[0], correlation.shape[-1]
    is_pos = labels.expand(N, N).eq(labels.expand(N, N).t())
    pos = correlation[is_pos].view(N, -1, M)
    neg = correlation[~is_pos].view(N, -1, M)

    def cosine_distance(x, y):
        return 1 - torch.bmm(x, y.transpose(1, 2)) / (x.norm(dim=2, keepdim=True) * y.norm(dim=2).unsqueeze(1))

    loss = 0
    if "pos" in mode:
        loss = loss + cosine_distance(attention.unsqueeze(1), pos).mean()
    if "neg" in mode:
        loss = loss + cosine_distance(neg, neg).mean()
    return loss


def test_correlation_is_each_positions_best_match_in_the_other_image():
    x = torch.randn(3, 5, 2, 3)
    corr = pairwise_correlation(x)
    assert corr.shape == (3, 3, 6)
    flat = x.flatten(2)
    for g in range(3):
        for p in range(3):
            expected = (flat[p].T @ flat[g]).max(dim=1).values  # for each position of p, best over g
            assert torch.allclose(corr[g, p], expected, atol=1e-5)


def test_module_outputs_correlations_and_position_attention():
    module = SpatialAlignModule(64)
    assert module.pos_pam.query_conv.out_channels == 8
    scores = module(torch.randn(4, 64, 4, 2))
    assert isinstance(scores, SAMScores)
    assert scores.correlation.shape == (4, 4, 8) and scores.attention.shape == (4, 8)


@pytest.mark.parametrize("mode", ["pos", "neg", "pos_neg"])
def test_loss_equals_the_authors_formulation_on_a_pk_batch(mode):
    torch.manual_seed(0)
    scores = SAMScores(torch.rand(8, 8, 6), torch.randn(8, 6))
    assert torch.allclose(sam_loss(scores, PIDS, mode), _authors_formulation(scores, PIDS, mode), atol=1e-5)


@pytest.mark.parametrize("mode", ["pos", "neg", "pos_neg"])
def test_loss_is_finite_and_trains_the_network(mode):
    torch.manual_seed(0)
    model = build_msinet("msmt", 4, sam_mode=mode).train()
    out = model(torch.randn(8, 3, 64, 32))
    assert out.sam.correlation.shape == (8, 8, 4 * 2)  # 64x32 input -> 4x2 last map
    loss = sam_loss(out.sam, PIDS, mode)
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    assert model.cells[7].conv4a.conv.weight.grad.abs().sum() > 0
    pam_grad = model.align_module.pos_pam.query_conv.weight.grad
    if "pos" in mode:
        assert pam_grad is not None and pam_grad.abs().sum() > 0
    else:
        assert pam_grad is None or pam_grad.abs().sum() == 0


def test_loss_works_on_vehicle_maps_and_unbalanced_batches():
    model = build_msinet("msmt", 3, sam_mode="pos_neg", vehicle=True).train()
    out = model(torch.randn(5, 3, 64, 64))
    assert out.sam.attention.shape == (5, 16)  # 4x4 last map
    loss = sam_loss(out.sam, torch.tensor([0, 0, 0, 1, 2]), "pos_neg")
    assert torch.isfinite(loss)


def test_a_batch_of_one_identity_has_no_negative_term():
    scores = SAMScores(torch.rand(4, 4, 6, requires_grad=True), torch.randn(4, 6))
    pids = torch.zeros(4, dtype=torch.long)
    assert sam_loss(scores, pids, "neg").item() == 0.0
    assert torch.isfinite(sam_loss(scores, pids, "pos_neg"))


def test_unknown_mode_is_rejected():
    scores = SAMScores(torch.rand(2, 2, 3), torch.rand(2, 3))
    with pytest.raises(ValueError, match="pos_neg"):
        sam_loss(scores, torch.tensor([0, 1]), "none")


def test_no_sam_in_eval_mode():
    model = build_msinet("msmt", 4, sam_mode="pos_neg").eval()
    with torch.no_grad():
        assert model(torch.randn(2, 3, 64, 32)).shape == (2, 768)
