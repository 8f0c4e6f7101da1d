"""One search iteration, checked against the gradients it must follow.

By default (the authors' flow) the weights take one SGD step on grad_w(L_train + L_valid): the valid loss of
the architecture step reaches them too. With `valid_grad_to_weights: false` (textbook first-order DARTS)
they take it on grad_w L_train alone. The alpha update is the same in both.
"""

import copy

import pytest
import torch
import torch.nn.functional as F

import spaces
from trials.config import make_config
from trials.search import search_step, side_loss

LR, WD = 0.025, 5e-4
CPU = torch.device("cpu")


def _setup(seed=0):
    torch.manual_seed(seed)
    model = spaces.Supernet()
    memories = []
    for n in (6, 8):
        memory = spaces.PrototypeMemory(n)
        memory.prototypes.copy_(F.normalize(torch.randn(n, 512), dim=1))  # non-zero: gradients flow
        memories.append(memory)
    pids = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    train_batch = (torch.randn(8, 3, 64, 32), pids)
    valid_batch = (torch.randn(8, 3, 64, 32), pids + 4)
    return model, memories, train_batch, valid_batch


def _weight_grads(model, loss):
    return torch.autograd.grad(loss, model.weight_parameters(), allow_unused=True)


def _run(grad_to_weights: bool):
    model, (train_memory, valid_memory), train_batch, valid_batch = _setup()
    before = copy.deepcopy((model, train_memory, valid_memory))
    cfg = make_config("search", {"scale": "smoke", "valid_grad_to_weights": grad_to_weights})
    optimizer = torch.optim.SGD(model.weight_parameters(), lr=LR, momentum=0.9, weight_decay=WD)
    architect = spaces.Architect(model, valid_memory, grad_to_weights=grad_to_weights)
    losses = search_step(side_loss(model, train_memory, cfg, CPU), architect, optimizer, train_batch, valid_batch,
                         True, cfg, CPU)
    return model, before, losses, train_batch, valid_batch


@pytest.mark.parametrize("grad_to_weights", [True, False])
def test_weight_step_follows_the_chosen_gradient_and_alpha_step_is_the_same(grad_to_weights):
    model, (model0, train_memory0, valid_memory0), losses, train_batch, valid_batch = _run(grad_to_weights)
    alpha1 = model.alpha.detach().clone()

    # The expected weight step, from the weights before it: the valid gradient at the old alpha, the train
    # gradient at the new one (the architecture steps first), then one SGD-with-momentum step from rest.
    valid_model = copy.deepcopy(model0)
    g_valid = _weight_grads(valid_model, copy.deepcopy(valid_memory0)(valid_model(valid_batch[0]), valid_batch[1]))
    train_model = copy.deepcopy(model0)
    with torch.no_grad():
        train_model.alpha.copy_(alpha1)
    g_train = _weight_grads(train_model, copy.deepcopy(train_memory0)(train_model(train_batch[0]), train_batch[1]))

    for w0, w1, gv, gt in zip(model0.weight_parameters(), model.weight_parameters(), g_valid, g_train, strict=True):
        grad = (gt if gt is not None else 0) + ((gv if gv is not None else 0) if grad_to_weights else 0)
        expected = w0.detach() - LR * (grad + WD * w0.detach())
        assert torch.allclose(w1.detach(), expected, atol=1e-6, rtol=1e-5)
    assert set(losses) == {"architecture", "weight"}


def test_the_two_flows_differ_in_the_weights_only():
    authors, _, _, _, _ = _run(True)
    textbook, _, _, _, _ = _run(False)
    assert torch.allclose(authors.alpha, textbook.alpha, atol=1e-7)
    moved = [(a - t).abs().max().item() for a, t in zip(authors.weight_parameters(), textbook.weight_parameters(),
                                                        strict=True)]
    assert max(moved) > 1e-4  # the valid gradient made a real difference to the weights


def test_without_an_architecture_step_alpha_stays_and_only_the_train_loss_counts():
    model, (train_memory, valid_memory), train_batch, valid_batch = _setup()
    alpha0 = model.alpha.detach().clone()
    cfg = make_config("search", {"scale": "smoke"})
    optimizer = torch.optim.SGD(model.weight_parameters(), lr=LR, momentum=0.9, weight_decay=WD)
    architect = spaces.Architect(model, valid_memory)
    prototypes = valid_memory.prototypes.clone()
    losses = search_step(side_loss(model, train_memory, cfg, CPU), architect, optimizer, train_batch, valid_batch,
                         False, cfg, CPU)
    assert set(losses) == {"weight"}
    assert torch.equal(model.alpha.detach(), alpha0)
    assert torch.equal(valid_memory.prototypes, prototypes)  # the valid batch was drawn, not used
