"""The supernet: mixed operations, architecture vs weight parameters, the derived genotype."""

import pytest
import torch

from spaces.genotype import OPERATIONS, Genotype, named_genotypes
from spaces.supernet import MixedInteraction, Supernet
from spaces.tcm import Architect, PrototypeMemory


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    return Supernet()


@pytest.fixture
def batch():
    torch.manual_seed(1)
    return torch.randn(4, 3, 64, 32), torch.tensor([0, 0, 1, 1])


def test_alpha_is_12_slots_by_4_operations_near_zero(net):
    assert net.alpha.shape == (12, len(OPERATIONS))
    assert net.alpha.abs().max() < 0.01 and net.alpha.abs().max() > 0


def test_arch_and_weight_parameters_are_disjoint_and_cover_the_model(net):
    arch = net.arch_parameters()
    weights = net.weight_parameters()
    assert len(arch) == 1 and arch[0] is net.alpha
    assert not {id(p) for p in arch} & {id(p) for p in weights}
    assert {id(p) for p in arch} | {id(p) for p in weights} == {id(p) for p in net.parameters()}


def test_every_slot_holds_all_four_operations(net):
    mixed = [m for m in net.modules() if isinstance(m, MixedInteraction)]
    assert len(mixed) == 12
    assert all(len(m.candidates) == 4 for m in mixed)


def test_search_cells_use_a_quarter_of_the_input_width(net):
    mids = [net.cells[i].conv1a.conv.out_channels for i in (0, 1, 3, 4, 6, 7)]
    assert mids == [16, 64, 64, 96, 96, 128]


def test_mixed_interaction_is_the_softmax_weighted_sum_of_the_operations():
    mixed = MixedInteraction(32)
    pair = (torch.rand(2, 32, 4, 2), torch.rand(2, 32, 4, 2))
    weights = torch.tensor([0.0, 1.0, 0.0, 0.0])  # exchange only
    a, b = mixed(pair, weights)
    assert torch.equal(a, pair[1]) and torch.equal(b, pair[0])


def test_forward_returns_the_512d_gap_feature_in_both_modes(net, batch):
    images, _ = batch
    assert net.train()(images).shape == (4, 512)
    with torch.no_grad():
        assert net.eval()(images).shape == (4, 512)
    net.train()


def test_the_valid_loss_reaches_alpha(batch):
    net = Supernet()
    images, targets = batch
    memory = PrototypeMemory(2)
    memory.init_from_features(torch.randn(4, 512), targets)
    memory(net(images), targets).backward()
    assert net.alpha.grad is not None and net.alpha.grad.abs().sum() > 0


def test_the_weight_optimiser_does_not_move_alpha(batch):
    net = Supernet()
    images, targets = batch
    optimiser = torch.optim.SGD(net.weight_parameters(), lr=0.1, momentum=0.9)
    alpha = net.alpha.detach().clone()
    conv = net.conv1.conv.weight.detach().clone()
    memory = PrototypeMemory(2)
    memory.init_from_features(torch.randn(4, 512), targets)
    memory(net(images), targets).backward()
    optimiser.step()
    assert torch.equal(net.alpha, alpha)
    assert not torch.equal(net.conv1.conv.weight, conv)


@pytest.mark.parametrize("grad_to_weights", [True, False])
def test_an_architect_step_changes_alpha_only_and_leaves_weight_gradients_as_asked(batch, grad_to_weights):
    net = Supernet()
    images, targets = batch
    memory = PrototypeMemory(2)
    memory.init_from_features(torch.randn(4, 512), targets)
    architect = Architect(net, memory, grad_to_weights=grad_to_weights)
    alpha = net.alpha.detach().clone()
    weights = [p.detach().clone() for p in net.weight_parameters()]
    loss = architect.step(images, targets)
    assert loss > 0
    assert not torch.equal(net.alpha, alpha)
    assert all(torch.equal(p, w) for p, w in zip(net.weight_parameters(), weights, strict=True))
    if grad_to_weights:  # the authors' flow: the valid gradient waits in the weights for the train step
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in net.weight_parameters())
    else:  # first-order DARTS: alpha alone
        assert all(p.grad is None for p in net.weight_parameters())
    assert net.alpha.grad is None


def test_architect_uses_adam_with_the_papers_settings():
    architect = Architect(Supernet(), PrototypeMemory(2))
    group = architect.optimizer.param_groups[0]
    assert isinstance(architect.optimizer, torch.optim.Adam)
    assert group["lr"] == 2e-3 and group["betas"] == (0.5, 0.999) and group["weight_decay"] == 1e-3


def test_derived_genotype_is_the_argmax_per_slot():
    net = Supernet()
    msmt = named_genotypes()["msmt"]
    with torch.no_grad():
        net.alpha.zero_()
        for slot, op in enumerate(msmt.ops):
            net.alpha[slot, OPERATIONS.index(op)] = 1.0
    assert net.genotype() == msmt
    assert isinstance(Supernet().genotype(), Genotype)
    probs = net.arch_weights()
    assert probs.shape == (12, 4) and torch.allclose(probs.sum(dim=1), torch.ones(12))
